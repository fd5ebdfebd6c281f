#include "sim/simgrid/child_process.h"

#include "model/input_error.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace palmsim::simulation {

namespace {

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += size_t(n);
  }
}

}  // namespace

nlohmann::json run_in_child_process(const std::function<nlohmann::json()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("simulate: cannot create a pipe");
  std::fflush(nullptr);  // the child must not flush the parent's buffered output a second time
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("simulate: cannot fork");
  if (pid == 0) {
    ::close(fds[0]);
    nlohmann::json out;
    try {
      out = {{"ok", body()}};
    } catch (const InputError& e) {
      const std::string what = e.what();
      out = {{"input_error", {{"field", e.field()}, {"message", what.substr(e.field().size() + 2)}}}};
    } catch (const std::exception& e) {
      out = {{"error", e.what()}};
    }
    write_all(fds[1], out.dump());
    ::close(fds[1]);
    ::_exit(0);  // skip the parent's atexit handlers and static destructors
  }
  ::close(fds[1]);
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, size_t(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (text.empty() || !WIFEXITED(status))
    throw std::runtime_error("simulate: the simulation process died" +
                             (WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")"
                                                  : std::string()));
  const auto out = nlohmann::json::parse(text);
  if (out.contains("input_error"))
    throw InputError(out["input_error"]["field"].get<std::string>(),
                     out["input_error"]["message"].get<std::string>());
  if (out.contains("error")) throw std::runtime_error(out["error"].get<std::string>());
  return out["ok"];
}

}  // namespace palmsim::simulation
