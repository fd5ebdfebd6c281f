#include "model/input_error.h"

#include <filesystem>
#include <fstream>
#include <system_error>

namespace palmsim {

void require_regular_file(const std::string& path, const std::string& field) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec == std::errc::too_many_symbolic_link_levels)
    throw InputError(field, "'" + path + "' is a symbolic link loop");
  if (ec == std::errc::permission_denied)
    throw InputError(field, "cannot read '" + path + "': permission denied (a folder on its path)");
  if (ec || !fs::exists(st)) throw InputError(field, "cannot read '" + path + "': no such file");
  if (fs::is_directory(st)) throw InputError(field, "'" + path + "' is a folder; give a file");
  if (!fs::is_regular_file(st)) throw InputError(field, "'" + path + "' is not a regular file");
  if (!std::ifstream(path)) throw InputError(field, "cannot read '" + path + "': permission denied");
  if (fs::file_size(path, ec) == 0 && !ec) throw InputError(field, "'" + path + "' is empty");
}

}  // namespace palmsim
