#include "model/input_error.h"

#include <filesystem>

namespace palmsim {

void require_regular_file(const std::string& path, const std::string& field) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw InputError(field, "cannot read '" + path + "': no such file");
  if (fs::is_directory(st)) throw InputError(field, "'" + path + "' is a folder; give a file");
  if (!fs::is_regular_file(st)) throw InputError(field, "'" + path + "' is not a regular file");
}

}  // namespace palmsim
