// runProcess on POSIX: real programs (/bin/sh and coreutils), real pipes and signals.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "platform/process.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using pass::platform::ProcessOptions;
using pass::platform::runProcess;
using pass::test::errorText;
using pass::test::TempDir;
using namespace std::chrono_literals;

namespace {

pass::Result<pass::platform::ProcessResult> sh(const std::string& script,
                                               ProcessOptions options = {}) {
  return runProcess({"/bin/sh", "-c", script}, options);
}

/// Whether `pid` still runs: gone from /proc, or a zombie waiting for its reaper, is not.
bool running(long pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

/// Polls `predicate` until it holds or `limit` passes.
template <typename P>
bool eventually(P predicate, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return predicate();
}

/// No child of the test process is left unreaped.
bool noChildren() {
  int status = 0;
  return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

}  // namespace

TEST_CASE("runProcess: exit status, standard output and error, empty standard input") {
  auto r = sh("printf 'to out'; printf 'to err' >&2; cat; exit 3");
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->exitCode == 3);
  CHECK(r->out == "to out");
  CHECK(r->err == "to err");
  CHECK_FALSE(r->truncated);
  CHECK(noChildren());

  auto ok = runProcess({"/bin/true"}, {});
  REQUIRE(ok.has_value());
  CHECK(ok->exitCode == 0);
  CHECK(ok->out.empty());
}

TEST_CASE("runProcess: a signal's death is 128 + N") {
  auto r = sh("kill -TERM $$");
  REQUIRE(r.has_value());
  CHECK(r->exitCode == 128 + 15);
}

TEST_CASE("runProcess: the environment is the agent's plus the options'") {
  ::setenv("PASS_TEST_INHERITED", "from-parent", 1);
  ::setenv("PASS_TEST_REPLACED", "old", 1);
  ProcessOptions options;
  options.env = {{"PASS_TEST_ADDED", "a b=c"}, {"PASS_TEST_REPLACED", "new"}};
  auto r =
      sh(R"(printf '%s|%s|%s' "$PASS_TEST_ADDED" "$PASS_TEST_REPLACED" "$PASS_TEST_INHERITED")",
         options);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->out == "a b=c|new|from-parent");
}

TEST_CASE("runProcess: arguments reach the program as they are, without a shell") {
  auto r = runProcess({"/bin/echo", "$HOME", "a;b", "'q'"}, {});
  REQUIRE(r.has_value());
  CHECK(r->out == "$HOME a;b 'q'\n");
}

TEST_CASE("runProcess: a missing program is not_found, naming it, no PATH search") {
  auto r = runProcess({"/nonexistent/auparts", "-unit", "x"}, {});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "not_found");
  CHECK(r.error().message.find("/nonexistent/auparts") != std::string::npos);

  auto bare = runProcess({"true"}, {});  // only a path would run; PATH is not searched
  REQUIRE_FALSE(bare.has_value());
  CHECK(bare.error().code == "not_found");
  CHECK(noChildren());
}

TEST_CASE("runProcess: a file that is not executable is io_error") {
  TempDir dir;
  std::ofstream(dir / "plain") << "not a program\n";
  auto r = runProcess({(dir / "plain").string()}, {});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "io_error");
}

TEST_CASE("runProcess: the timeout kills the program and its children, and reaps it") {
  TempDir dir;
  auto pidFile = dir / "child.pid";
  ProcessOptions options;
  options.timeout = 300ms;
  auto started = std::chrono::steady_clock::now();
  auto r = sh(fmt::format("sleep 30 & echo $! > '{}'; wait", pidFile.string()), options);
  auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "timeout");
  CHECK(r.error().message.find("/bin/sh") != std::string::npos);
  CHECK(took >= 300ms);
  CHECK(took < 5s);
  long child = 0;
  REQUIRE(eventually([&] {
    std::ifstream in(pidFile);
    return static_cast<bool>(in >> child);
  }));
  CHECK(eventually([&] { return !running(child); }));
  CHECK(noChildren());
}

TEST_CASE("runProcess: a program that closes its output but keeps running still times out") {
  ProcessOptions options;
  options.timeout = 300ms;
  auto r = sh("exec >/dev/null 2>&1; sleep 30", options);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "timeout");
  CHECK(noChildren());
}

TEST_CASE("runProcess: output beyond maxOutput is dropped and flagged, the program finishes") {
  ProcessOptions options;
  options.maxOutput = 1000;
  auto r = sh("head -c 300000 /dev/zero; printf 'short' >&2; exit 4", options);
  REQUIRE_MESSAGE(r.has_value(), errorText(r));
  CHECK(r->out.size() == 1000);
  CHECK(r->err == "short");
  CHECK(r->truncated);
  CHECK(r->exitCode == 4);
}

TEST_CASE("runProcess: the agent's own descriptors stay with the agent") {
  TempDir dir;
  int fd = ::open((dir / "secret").c_str(), O_CREAT | O_WRONLY, 0600);  // no O_CLOEXEC on purpose
  REQUIRE(fd >= 0);
  auto r = sh(fmt::format("test -e /proc/$$/fd/{} && echo inherited || echo closed", fd));
  ::close(fd);
  REQUIRE(r.has_value());
  CHECK(r->out == "closed\n");
}
