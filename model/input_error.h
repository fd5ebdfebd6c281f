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

// Throws InputError naming `field` unless `path` is a regular file: one message for a missing
// path, one for a folder, one for anything else (a device such as /dev/null, a socket).
void require_regular_file(const std::string& path, const std::string& field);

}  // namespace palmsim
