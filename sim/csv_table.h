#pragma once
// A CSV file as a header and rows of strings, read with libcsv (RFC 4180: quoted fields may hold
// commas, quotes and newlines). Rows of the wrong width make the file malformed.
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
// Writes atomically (temporary file, then rename); never leaves a partial file.
void write_csv(const CsvTable& table, const std::string& path);
// The same for any text; a failure is an InputError naming `field` (the option that gave the path).
void write_text_atomically(const std::string& text, const std::string& path, const std::string& field);
std::string csv_quote(const std::string& field);

}  // namespace palmsim
