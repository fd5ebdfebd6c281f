#pragma once
// Bad user input: one clear message naming the field and the allowed values. The CLI turns it into
// exit status 2 (DESIGN.md, "Contracts").
#include <stdexcept>
#include <string>

namespace palmsim {

class InputError : public std::runtime_error {
 public:
  InputError(const std::string& field, const std::string& message)
      : std::runtime_error(field + ": " + message), field_(field) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Throws InputError naming `field` unless `path` is a readable, non-empty regular file: its own
// message for a missing path, a symbolic link loop, a path it may not read, a folder, anything
// else that is not a file (a device such as /dev/null, a socket), and an empty file.
void require_regular_file(const std::string& path, const std::string& field);

}  // namespace palmsim
