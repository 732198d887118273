#pragma once
// tools/smtpd/pass-smtpd.py as a child of a unit test: a real SMTP server (aiosmtpd) that
// delivers into a Maildir. It runs under Debian's /usr/bin/python3, where python3-aiosmtpd is.

#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "test_child_server.hpp"
#include "test_support.hpp"

namespace pass::test {

class Smtpd {
 public:
  /// `options` are passed on; "TLS" stands for DIR/tls (with --self-signed). `port` 0 picks a
  /// free one; a fixed port lets a test stop the server and start it again where the home
  /// expects it.
  Smtpd(const TempDir& dir, std::vector<std::string> options, std::uint16_t port = 0)
      : dir_(dir.path()), portFile_(nextPortFile(dir)), child_(argv(options, port), portFile_) {}
  void stop() { child_.stop(); }
  std::uint16_t port() const { return child_.port(); }
  std::string url() const { return fmt::format("smtp://127.0.0.1:{}", child_.port()); }
  std::filesystem::path maildir() const { return dir_ / "mail"; }
  std::filesystem::path events() const { return dir_ / "events.jsonl"; }
  std::filesystem::path cert() const { return dir_ / "tls/cert.pem"; }

  /// The messages delivered so far (files in the Maildir's new/).
  std::vector<std::filesystem::path> messages() const {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(maildir() / "new", ec)) {
      out.push_back(e.path());
    }
    return out;
  }

 private:
  static std::filesystem::path nextPortFile(const TempDir& dir) {
    static int counter = 0;
    return dir / fmt::format("smtp-port-{}", ++counter);
  }
  std::vector<std::string> argv(const std::vector<std::string>& options, std::uint16_t port) const {
    std::vector<std::string> args{
        "/usr/bin/python3",
        (std::filesystem::path(PASS_SOURCE_DIR) / "tools/smtpd/pass-smtpd.py").string(),
        "--port",
        std::to_string(port),
        "--port-file",
        portFile_.string(),
        "--maildir",
        maildir().string(),
        "--events",
        events().string()};
    for (const auto& o : options) args.push_back(o == "TLS" ? (dir_ / "tls").string() : o);
    return args;
  }
  std::filesystem::path dir_;
  std::filesystem::path portFile_;  // before child_: the child is started with it
  ChildServer child_;
};

}  // namespace pass::test
