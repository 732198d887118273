#include "platform/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace pass::platform {
namespace {

using Clock = std::chrono::steady_clock;

std::string describeErrno(int err) { return std::generic_category().message(err); }

/// Owns one end of a pipe.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

/// posix_spawn's attribute and file-action objects, destroyed on every path.
class SpawnSetup {
 public:
  SpawnSetup() {
    actionsOk_ = ::posix_spawn_file_actions_init(&actions_) == 0;
    attrOk_ = ::posix_spawnattr_init(&attr_) == 0;
  }
  ~SpawnSetup() {
    if (actionsOk_) ::posix_spawn_file_actions_destroy(&actions_);
    if (attrOk_) ::posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  /// Empty stdin, the pipes as stdout and stderr, nothing else of ours (the agent's spool,
  /// sockets and keys stay with the agent), and a process group of its own so that a timeout
  /// takes the program's children too. Returns 0 or an errno value.
  int prepare(int out, int err) {
    if (!actionsOk_ || !attrOk_) return ENOMEM;
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    int rc = 0;
    auto step = [&rc](int r) {
      if (rc == 0) rc = r;
    };
    step(::posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0));
    step(::posix_spawn_file_actions_adddup2(&actions_, out, 1));
    step(::posix_spawn_file_actions_adddup2(&actions_, err, 2));
    step(::posix_spawn_file_actions_addclosefrom_np(&actions_, 3));
    step(::posix_spawnattr_setpgroup(&attr_, 0));
    step(::posix_spawnattr_setsigmask(&attr_, &none));
    step(::posix_spawnattr_setsigdefault(&attr_, &all));
    step(::posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
    return rc;
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_{};
  posix_spawnattr_t attr_{};
  bool actionsOk_ = false;
  bool attrOk_ = false;
};

/// The agent's environment with the caller's variables added or replaced.
std::vector<std::string> environment(const ProcessOptions& options) {
  std::map<std::string, std::string> vars;
  std::vector<std::string> order;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    vars[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  for (const auto& [name, value] : options.env) vars[name] = value;
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (const auto& [name, value] : vars) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  p.reserve(strings.size() + 1);
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void pauseBriefly() {
  timespec ts{0, 2'000'000};
  ::nanosleep(&ts, nullptr);
}

/// Waits for `pid` until `deadline`; the exit status, or nothing when it is still running.
std::optional<int> reapBy(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;  // not our child any more: nothing left to reap
    if (Clock::now() >= deadline) return std::nullopt;
    // The pipes are closed already, so the exit follows within moments.
    pauseBriefly();
  }
}

/// Kills the program's whole process group and reaps the program.
void killGroup(pid_t pid) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<ProcessResult> runProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options) {
  if (argv.empty() || argv.front().empty()) return fail("io_error", "runProcess: no program");
  const std::string& program = argv.front();
  const auto deadline = Clock::now() + options.timeout;

  std::array<int, 2> outPipe{-1, -1};
  std::array<int, 2> errPipe{-1, -1};
  // O_CLOEXEC: a program another thread starts at the same moment must not inherit them.
  if (::pipe2(outPipe.data(), O_CLOEXEC) != 0) {
    return fail("io_error", fmt::format("cannot run {}: pipe: {}", program, describeErrno(errno)));
  }
  Fd outRead(outPipe[0]);
  Fd outWrite(outPipe[1]);
  if (::pipe2(errPipe.data(), O_CLOEXEC) != 0) {
    return fail("io_error", fmt::format("cannot run {}: pipe: {}", program, describeErrno(errno)));
  }
  Fd errRead(errPipe[0]);
  Fd errWrite(errPipe[1]);

  SpawnSetup setup;
  if (int rc = setup.prepare(outWrite.get(), errWrite.get()); rc != 0) {
    return fail("io_error", fmt::format("cannot run {}: {}", program, describeErrno(rc)));
  }
  std::vector<std::string> args(argv);
  auto argp = pointers(args);
  auto env = environment(options);
  auto envp = pointers(env);
  pid_t pid = -1;
  // posix_spawn, not spawnp: no PATH search. glibc reports exec failures (ENOENT, EACCES) here.
  int rc =
      ::posix_spawn(&pid, program.c_str(), setup.actions(), setup.attr(), argp.data(), envp.data());
  if (rc != 0) {
    return fail(rc == ENOENT || rc == ENOTDIR ? "not_found" : "io_error",
                fmt::format("cannot run {}: {}", program, describeErrno(rc)));
  }
  outWrite.reset();
  errWrite.reset();

  ProcessResult result;
  std::array<Fd*, 2> fds{&outRead, &errRead};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  std::array<char, 65536> buffer{};
  while (outRead.get() >= 0 || errRead.get() >= 0) {
    auto now = Clock::now();
    if (now >= deadline) {
      killGroup(pid);
      return fail("timeout", fmt::format("{} did not finish within {} s; it was killed", program,
                                         options.timeout.count() / 1000.0));
    }
    std::array<pollfd, 2> polls{};
    nfds_t n = 0;
    std::array<std::size_t, 2> which{};
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i]->get() < 0) continue;
      polls[n] = pollfd{fds[i]->get(), POLLIN, 0};
      which[n++] = i;
    }
    // Rounded up: a poll that wakes a fraction of a millisecond early must not end the wait
    // before the deadline (the loop's check above decides, on the exact clock).
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    int ready = ::poll(polls.data(), n, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      killGroup(pid);
      return fail("io_error", fmt::format("reading {}: poll: {}", program, describeErrno(err)));
    }
    for (nfds_t k = 0; k < n; ++k) {
      if (polls[k].revents == 0) continue;
      std::size_t i = which[k];
      ssize_t got = ::read(fds[i]->get(), buffer.data(), buffer.size());
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        fds[i]->reset();
        continue;
      }
      // Past the cap the program is drained, not stopped: it finishes as it would have.
      std::string& sink = *sinks[i];
      auto room = options.maxOutput - std::min(options.maxOutput, sink.size());
      auto take = std::min(room, static_cast<std::size_t>(got));
      sink.append(buffer.data(), take);
      if (take < static_cast<std::size_t>(got)) result.truncated = true;
    }
  }
  auto status = reapBy(pid, deadline);
  if (!status) {
    killGroup(pid);
    return fail("timeout", fmt::format("{} did not exit within {} s; it was killed", program,
                                       options.timeout.count() / 1000.0));
  }
  result.exitCode = exitCodeOf(*status);
  return result;
}

}  // namespace pass::platform
