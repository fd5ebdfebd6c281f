#include "model/atomic_file.h"

#include "model/input_error.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstring>

namespace palmsim {

namespace {

// The registered temporaries: a fixed table a signal handler can walk without locks or allocation.
constexpr int kSlots = 64;
std::array<std::atomic<const char*>, kSlots> g_temporaries{};

extern "C" void remove_temporaries_and_reraise(int signal) {
  for (auto& slot : g_temporaries)
    if (const char* path = slot.load()) ::unlink(path);  // async-signal-safe
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

void remove_temporaries_on_signals() {
  std::signal(SIGINT, remove_temporaries_and_reraise);
  std::signal(SIGTERM, remove_temporaries_and_reraise);
}

TemporaryFile::TemporaryFile(std::string path) : path_(std::move(path)) {
  for (int i = 0; i < kSlots && slot_ < 0; ++i) {
    const char* empty = nullptr;
    if (g_temporaries[size_t(i)].compare_exchange_strong(empty, path_.c_str())) slot_ = i;
  }
  if (slot_ < 0) throw InputError("output", "more than 64 output files open at once");
}

TemporaryFile::~TemporaryFile() {
  if (slot_ < 0) return;
  g_temporaries[size_t(slot_)].store(nullptr);
  ::unlink(path_.c_str());
}

void TemporaryFile::release() {
  if (slot_ >= 0) g_temporaries[size_t(slot_)].store(nullptr);
  slot_ = -1;
}

AtomicFile::AtomicFile(const std::string& path, std::string field)
    : path_(path), field_(std::move(field)), temporary_(path + ".tmp") {
  file_ = std::fopen(temporary_.path().c_str(), "wb");
  if (!file_)
    throw InputError(field_, "cannot write '" + temporary_.path() + "': " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
}

void AtomicFile::write(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    throw InputError(field_, "cannot write '" + temporary_.path() + "': " + std::strerror(errno));
}

void AtomicFile::commit() {
  const bool flushed = std::fflush(file_) == 0;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) throw InputError(field_, "cannot write '" + temporary_.path() + "'");
  if (std::rename(temporary_.path().c_str(), path_.c_str()) != 0)
    throw InputError(field_, "cannot rename '" + temporary_.path() + "' to '" + path_ + "': " + std::strerror(errno));
  temporary_.release();
}

void write_file_atomically(const std::string& text, const std::string& path, const std::string& field) {
  AtomicFile f(path, field);
  f.write(text);
  f.commit();
}

}  // namespace palmsim
