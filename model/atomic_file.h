#pragma once
// Output files written whole or not at all. Text goes to "<path>.tmp", which commit() renames
// over <path>; a file never committed (an error on the way) is removed when its AtomicFile goes
// away, and on SIGINT or SIGTERM every temporary file still open is removed before the process
// ends as the signal says (remove_temporaries_on_signals). So an interrupted run leaves either the
// old file or the new one, and no stray temporary.
#include <cstdio>
#include <string>
#include <string_view>

namespace palmsim {

// Installs the SIGINT and SIGTERM handlers that remove the registered temporary files; main()
// calls it once. Without it the files are still removed on every normal exit path.
void remove_temporaries_on_signals();

// A temporary file registered for removal on a signal; removed on destruction unless released
// (it was renamed into place). At most 64 are registered at once (InputError beyond that).
class TemporaryFile {
 public:
  explicit TemporaryFile(std::string path);
  ~TemporaryFile();
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  const std::string& path() const { return path_; }
  void release();

 private:
  std::string path_;
  int slot_ = -1;
};

class AtomicFile {
 public:
  // `field` names the option that gave the path, for error messages.
  AtomicFile(const std::string& path, std::string field);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(std::string_view text);
  void commit();  // flush and rename into place; throws InputError on failure

 private:
  std::string path_, field_;
  TemporaryFile temporary_;
  std::FILE* file_ = nullptr;
};

// The whole text at once.
void write_file_atomically(const std::string& text, const std::string& path, const std::string& field);

}  // namespace palmsim
