#include "sim/csv_table.h"

#include "model/input_error.h"

#include <csv.h>

#include <cstdio>
#include <fstream>
#include <iterator>

namespace palmsim {

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return int(i);
  return -1;
}

namespace {

struct Reader {
  CsvTable table;
  std::vector<std::string> row;
  bool in_header = true;
  size_t line = 1;
  std::string error;
};

void on_field(void* data, size_t len, void* r) {
  static_cast<Reader*>(r)->row.emplace_back(static_cast<const char*>(data), len);
}

void on_row(int, void* r) {
  auto* reader = static_cast<Reader*>(r);
  ++reader->line;
  if (reader->in_header) {
    reader->table.header = std::move(reader->row);
    reader->in_header = false;
  } else if (reader->row.size() == 1 && reader->row[0].empty()) {
    // blank line
  } else if (reader->row.size() != reader->table.header.size()) {
    if (reader->error.empty())
      reader->error = "row " + std::to_string(reader->table.rows.size() + 1) + " has " +
                      std::to_string(reader->row.size()) + " fields but the header has " +
                      std::to_string(reader->table.header.size());
  } else {
    reader->table.rows.push_back(std::move(reader->row));
  }
  reader->row.clear();
}

}  // namespace

CsvTable read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require_regular_file(path, "csv");
  if (!in) throw InputError("csv", "cannot read '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_APPEND_NULL | CSV_STRICT_FINI) != 0)
    throw InputError("csv", "cannot initialise the CSV parser");
  Reader reader;
  const size_t parsed = csv_parse(&parser, text.data(), text.size(), on_field, on_row, &reader);
  const bool ok = parsed == text.size() && csv_fini(&parser, on_field, on_row, &reader) == 0;
  const std::string parse_error = ok ? "" : csv_strerror(csv_error(&parser));
  csv_free(&parser);
  if (!ok) throw InputError("csv", "'" + path + "' is malformed CSV: " + parse_error);
  if (!reader.error.empty()) throw InputError("csv", "'" + path + "' is malformed: " + reader.error);
  if (reader.table.header.empty()) throw InputError("csv", "'" + path + "' has no header row");
  return reader.table;
}

std::string csv_quote(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out(field.size() * 2 + 2, '\0');
  out.resize(csv_write(out.data(), out.size(), field.data(), field.size()));
  return out;
}

void write_text_atomically(const std::string& text, const std::string& path, const std::string& field) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw InputError(field, "cannot write '" + tmp + "'");
    out << text;
    if (!out.flush()) {
      std::remove(tmp.c_str());
      throw InputError(field, "cannot write '" + tmp + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError(field, "cannot rename '" + tmp + "' to '" + path + "'");
  }
}

void write_csv(const CsvTable& table, const std::string& path) {
  std::string text;
  auto add_row = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) text += (i ? "," : "") + csv_quote(row[i]);
    text += "\n";
  };
  add_row(table.header);
  for (const auto& row : table.rows) add_row(row);
  write_text_atomically(text, path, "output");
}

}  // namespace palmsim
