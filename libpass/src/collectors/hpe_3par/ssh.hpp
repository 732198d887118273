#pragma once
// One SSH connection to an array's CLI (libssh, wrapped here and nowhere else). The caller
// checks the host key's fingerprint against its pin between connect() and authentication, so
// a password is never sent to a host that is not the pinned array.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass::hpe_3par {

struct SshOutput {
  int exitStatus = -1;  // -1 when the server sent none
  std::string out;
  std::string err;
};

/// Errors carry `codePrefix` + ".unreachable" (resolve, connect, key exchange),
/// ".login_failed", ".timeout" or ".bad_output" (output too long); messages start with `who`
/// ("hpe_3par 1234567") and name the host and port.
class SshClient {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  SshClient(std::string codePrefix, std::string who);
  ~SshClient();
  SshClient(const SshClient&) = delete;
  SshClient& operator=(const SshClient&) = delete;

  /// TCP connect and key exchange, each blocking step bounded by the time left to `deadline`.
  /// The user's ~/.ssh/config and known_hosts are not used: the pin is the trust.
  Status connect(std::string_view host, std::uint16_t port, std::string_view user,
                 Deadline deadline);

  /// The server's host key as OpenSSH prints it: "SHA256:" and unpadded base64.
  Result<std::string> hostKeyFingerprint();

  /// Password authentication, falling back to keyboard-interactive (each prompt answered with
  /// the password) when the server offers only that.
  Status authenticatePassword(std::string_view password);

  /// Public-key authentication with an unencrypted private key file (OpenSSH or PEM format).
  Status authenticateKey(const std::filesystem::path& keyFile);

  /// Runs one command on a new channel and reads stdout and stderr until the command ends or
  /// `deadline` passes (".timeout"). More than `maxOutput` bytes is ".bad_output".
  Result<SshOutput> exec(std::string_view command, Deadline deadline,
                         std::size_t maxOutput = 16u << 20);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pass::hpe_3par
