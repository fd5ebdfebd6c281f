#include "sim/csv_table.h"

#include "model/atomic_file.h"
#include "model/input_error.h"

#include <csv.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <iterator>

namespace palmsim {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  return -1;
}

struct CsvReader::State {
  std::ifstream in;
  csv_parser parser{};
  bool parser_ready = false, finished = false;
  std::vector<std::string> row;             // the row being parsed
  std::deque<std::vector<std::string>> done;  // rows parsed, not yet returned (one chunk's worth)
  ~State() {
    if (parser_ready) csv_free(&parser);
  }
};

namespace {

constexpr size_t kChunkBytes = 1 << 16;

void on_field(void* data, size_t len, void* state) {
  static_cast<CsvReader::State*>(state)->row.emplace_back(static_cast<const char*>(data), len);
}

void on_row(int, void* state) {
  auto* st = static_cast<CsvReader::State*>(state);
  st->done.push_back(std::move(st->row));
  st->row.clear();
}

}  // namespace

CsvReader::CsvReader(const std::string& path) : path_(path), state_(std::make_unique<State>()) {
  require_regular_file(path, "csv");
  state_->in.open(path, std::ios::binary);
  if (!state_->in)
    throw InputError("csv", "cannot read '" + path + "'");
  if (csv_init(&state_->parser, CSV_STRICT | CSV_APPEND_NULL | CSV_STRICT_FINI) != 0)
    throw InputError("csv", "cannot initialise the CSV parser");
  state_->parser_ready = true;
  while (state_->done.empty() && fill()) {
  }
  if (state_->done.empty()) throw InputError("csv", "'" + path + "' has no header row");
  header_ = std::move(state_->done.front());
  state_->done.pop_front();
}

CsvReader::~CsvReader() = default;

bool CsvReader::fill() {
  State& st = *state_;
  if (st.finished) return false;
  char buffer[kChunkBytes];
  st.in.read(buffer, sizeof buffer);
  const size_t got = size_t(st.in.gcount());
  bool ok = csv_parse(&st.parser, buffer, got, on_field, on_row, &st) == got;
  if (ok && got < sizeof buffer) {
    st.finished = true;
    ok = csv_fini(&st.parser, on_field, on_row, &st) == 0;
  }
  if (!ok) throw InputError("csv", "'" + path_ + "' is malformed CSV: " + csv_strerror(csv_error(&st.parser)));
  return true;
}

bool CsvReader::next(std::vector<std::string>& row) {
  for (;;) {
    while (state_->done.empty())
      if (!fill()) return false;
    row = std::move(state_->done.front());
    state_->done.pop_front();
    if (row.size() == 1 && row[0].empty()) continue;  // a blank line
    ++rows_read_;
    if (row.size() != header_.size())
      throw InputError("csv", "'" + path_ + "' is malformed: row " + std::to_string(rows_read_) + " has " +
                                  std::to_string(row.size()) + " fields but the header has " +
                                  std::to_string(header_.size()));
    return true;
  }
}

CsvTable read_csv(const std::string& path) {
  CsvReader reader(path);
  CsvTable table;
  table.header = reader.header();
  std::vector<std::string> row;
  while (reader.next(row)) table.rows.push_back(std::move(row));
  return table;
}

std::string csv_quote(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out(field.size() * 2 + 2, '\0');
  out.resize(csv_write(out.data(), out.size(), field.data(), field.size()));
  return out;
}

void write_text_atomically(const std::string& text, const std::string& path, const std::string& field) {
  write_file_atomically(text, path, field);
}

std::string csv_line(const std::vector<std::string>& row) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) line += (i ? "," : "") + csv_quote(row[i]);
  return line + "\n";
}

void write_csv(const CsvTable& table, const std::string& path) {
  std::string text = csv_line(table.header);
  for (const auto& row : table.rows) text += csv_line(row);
  write_text_atomically(text, path, "output");
}

}  // namespace palmsim
