#pragma once
// A server the test runs as a child process (a Python TLS server or simulator) that writes
// its port to a file once it listens. POSIX only, like the tests that use it.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

namespace pass::test {

class ChildServer {
 public:
  /// Starts `args` (argv[0] looked up in PATH) and polls, with a deadline, until `portFile`
  /// exists or the child exits.
  ChildServer(std::vector<std::string> args, const std::filesystem::path& portFile) {
    using namespace std::chrono_literals;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawnp(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    int status = 0;
    while (!std::filesystem::exists(portFile) && waitpid(pid_, &status, WNOHANG) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE_MESSAGE(std::filesystem::exists(portFile), args[1], " did not listen");
    std::ifstream in(portFile);
    in >> port_;
  }
  ~ChildServer() { stop(); }
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  /// Kills and reaps the child; idempotent.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = 0;
  std::uint16_t port_ = 0;
};

}  // namespace pass::test
