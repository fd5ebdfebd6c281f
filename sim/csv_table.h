#pragma once
// A CSV file as a header and rows of strings, read with libcsv (RFC 4180: quoted fields may hold
// commas, quotes and newlines). Rows of the wrong width make the file malformed.
#include <memory>
#include <string>
#include <vector>

namespace palmsim {

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name) const;  // -1 when absent
};

// Throws InputError naming the file (and line) when unreadable or malformed.
CsvTable read_csv(const std::string& path);

// The same file row by row, in chunks: memory does not grow with the number of rows. The
// constructor reads the header; next() throws InputError, as read_csv does, at a malformed row.
class CsvReader {
 public:
  explicit CsvReader(const std::string& path);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;
  const std::vector<std::string>& header() const { return header_; }
  bool next(std::vector<std::string>& row);  // false after the last row
  size_t rows_read() const { return rows_read_; }

  struct State;  // libcsv's parser and the rows it has completed

 private:
  bool fill();  // parses the next chunk; false at the end of the file
  std::string path_;
  std::vector<std::string> header_;
  size_t rows_read_ = 0;
  std::unique_ptr<State> state_;
};
// Writes atomically (temporary file, then rename); never leaves a partial file.
void write_csv(const CsvTable& table, const std::string& path);
// The same for any text; a failure is an InputError naming `field` (the option that gave the path).
void write_text_atomically(const std::string& text, const std::string& path, const std::string& field);
std::string csv_quote(const std::string& field);
// One row as a CSV line (fields quoted where needed, newline-terminated).
std::string csv_line(const std::vector<std::string>& row);

}  // namespace palmsim
