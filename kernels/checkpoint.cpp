#include "kernels/checkpoint.h"

#include "model/atomic_file.h"
#include "model/input_error.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace palmsim {

namespace {

constexpr char kMagic[8] = {'P', 'A', 'L', 'M', 'C', 'K', 'P', '1'};

struct Checksum {
  uint64_t h = kChecksumSeed;
  void add(const void* data, size_t n) { h = checkpoint_checksum(data, n, h); }
};

class Writer {
 public:
  explicit Writer(const std::string& path) : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644)), path_(path) {
    if (fd_ < 0) throw InputError("--out", "cannot write '" + path + "': " + std::strerror(errno));
  }
  ~Writer() {
    if (fd_ >= 0) ::close(fd_);
  }
  void put(const void* data, size_t n) {
    sum_.add(data, n);
    raw(data, n);
  }
  void raw(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) throw InputError("--out", "cannot write '" + path_ + "': " + std::strerror(errno));
      p += w, n -= size_t(w);
    }
  }
  template <class T>
  void value(const T& v) { put(&v, sizeof v); }
  void floats(const std::vector<float>& v) {
    value(uint64_t(v.size()));
    put(v.data(), v.size() * sizeof(float));
  }
  void finish() {
    raw(&sum_.h, sizeof sum_.h);
    if (::fsync(fd_) != 0) throw InputError("--out", "cannot sync '" + path_ + "'");
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
  std::string path_;
  Checksum sum_;
};

void sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// FNV-1a, 64 bit: enough to catch truncation and torn writes.
uint64_t checkpoint_checksum(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

void write_checkpoint(const Checkpoint& c, const std::string& path) {
  TemporaryFile temporary(path + ".tmp");  // removed on an error or a signal before the rename
  const std::string& tmp = temporary.path();
  const char* pause = std::getenv("PALMSIM_CHECKPOINT_PAUSE_S");
  {
    Writer w(tmp);
    w.put(kMagic, sizeof kMagic);
    w.value(uint64_t(c.fingerprint.size()));
    w.put(c.fingerprint.data(), c.fingerprint.size());
    w.value(c.step);
    w.value(uint64_t(c.ranks.size()));
    for (size_t r = 0; r < c.ranks.size(); ++r) {
      w.floats(c.ranks[r].params);
      if (pause && r == c.ranks.size() / 2)  // half written: where the crash test strikes
        std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
      w.floats(c.ranks[r].first_moment);
      w.floats(c.ranks[r].second_moment);
    }
    w.finish();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw InputError("--out", "cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  temporary.release();
  sync_folder(std::filesystem::path(path).parent_path());
}

bool read_checkpoint(const std::string& path, Checkpoint& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto damaged = [&](const char* why) { return InputError("checkpoint", "'" + path + "' is damaged: " + why); };
  if (bytes.size() < sizeof kMagic + 8 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw damaged("not a palmsim checkpoint");
  Checksum sum;
  sum.add(bytes.data(), bytes.size() - 8);
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != sum.h) throw damaged("checksum mismatch");
  size_t pos = sizeof kMagic;
  const size_t end = bytes.size() - 8;
  // Every count is checked against the bytes left before anything is allocated for it.
  auto count = [&](uint64_t n, size_t element_bytes) {
    if (n > (end - pos) / element_bytes) throw damaged("truncated");
    return size_t(n);
  };
  auto take = [&](void* dst, size_t n) {
    if (n > end - pos) throw damaged("truncated");
    if (n > 0) std::memcpy(dst, bytes.data() + pos, n);  // an empty vector's data() may be null
    pos += n;
  };
  auto floats = [&](std::vector<float>& v) {
    uint64_t n;
    take(&n, sizeof n);
    v.resize(count(n, sizeof(float)));
    take(v.data(), n * sizeof(float));
  };
  uint64_t len, ranks;
  take(&len, sizeof len);
  out.fingerprint.resize(count(len, 1));
  take(out.fingerprint.data(), len);
  take(&out.step, sizeof out.step);
  take(&ranks, sizeof ranks);
  out.ranks.assign(count(ranks, 3 * sizeof(uint64_t)), {});  // three vector lengths per rank at least
  for (auto& r : out.ranks) {
    floats(r.params);
    floats(r.first_moment);
    floats(r.second_moment);
  }
  if (pos != end) throw damaged("trailing bytes after the last rank");
  return true;
}

}  // namespace palmsim
