// hpe_3par: the libssh wrapper. Every libssh handle is owned by a unique_ptr with its free
// function, so that each error path is a plain return.

#include "collectors/hpe_3par/ssh.hpp"

#include <libssh/libssh.h>

#include <algorithm>
#include <array>
#include <utility>

#include <fmt/format.h>

#include "platform/fs.hpp"

namespace pass::hpe_3par {

namespace {

struct SessionFree {
  void operator()(ssh_session s) const {
    ssh_disconnect(s);
    ssh_free(s);
  }
};
struct KeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};
struct ChannelFree {
  void operator()(ssh_channel c) const {
    if (ssh_channel_is_open(c) != 0) ssh_channel_close(c);
    ssh_channel_free(c);
  }
};
struct HashFree {
  void operator()(unsigned char* h) const { ssh_clean_pubkey_hash(&h); }
};
struct CharFree {
  void operator()(char* s) const { ssh_string_free_char(s); }
};

using Session = std::unique_ptr<std::remove_pointer_t<ssh_session>, SessionFree>;
using Key = std::unique_ptr<std::remove_pointer_t<ssh_key>, KeyFree>;
using Channel = std::unique_ptr<std::remove_pointer_t<ssh_channel>, ChannelFree>;
using Hash = std::unique_ptr<unsigned char, HashFree>;
using CString = std::unique_ptr<char, CharFree>;

using Clock = std::chrono::steady_clock;

/// Whole seconds left before `deadline`, at least 1: libssh's blocking calls take seconds.
long secondsLeft(SshClient::Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count();
  return std::max<long>(1, static_cast<long>(left));
}

}  // namespace

struct SshClient::Impl {
  std::string prefix;
  std::string who;
  std::string where;  // "host:port"
  Session session;
  bool connected = false;

  Error error(std::string_view kind, std::string_view what) const {
    return Error{fmt::format("{}.{}", prefix, kind), fmt::format("{}: {}", who, what)};
  }
  std::string libsshError() const {
    const char* e = session ? ssh_get_error(session.get()) : nullptr;
    return e == nullptr || *e == '\0' ? std::string("no detail") : std::string(e);
  }
  Status setTimeout(Deadline deadline) {
    long seconds = secondsLeft(deadline);
    if (ssh_options_set(session.get(), SSH_OPTIONS_TIMEOUT, &seconds) != SSH_OK) {
      return std::unexpected(error("unreachable", "cannot set the SSH timeout"));
    }
    return {};
  }
};

SshClient::SshClient(std::string codePrefix, std::string who) : impl_(std::make_unique<Impl>()) {
  impl_->prefix = std::move(codePrefix);
  impl_->who = std::move(who);
}

SshClient::~SshClient() = default;

Status SshClient::connect(std::string_view host, std::uint16_t port, std::string_view user,
                          Deadline deadline) {
  Impl& d = *impl_;
  d.where = fmt::format("{}:{}", host, port);
  d.session.reset(ssh_new());
  if (!d.session) return std::unexpected(d.error("unreachable", "cannot create an SSH session"));
  const std::string hostText(host);
  const std::string userText(user);
  unsigned int portValue = port;
  bool processConfig = false;
  int strictHostKeys = 0;
  ssh_session s = d.session.get();
  if (ssh_options_set(s, SSH_OPTIONS_HOST, hostText.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PORT, &portValue) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_USER, userText.c_str()) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &processConfig) != SSH_OK ||
      ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &strictHostKeys) != SSH_OK) {
    return std::unexpected(d.error(
        "unreachable", fmt::format("invalid SSH options for {}: {}", d.where, d.libsshError())));
  }
  if (auto t = d.setTimeout(deadline); !t) return t;
  if (ssh_connect(s) != SSH_OK) {
    const std::string why = d.libsshError();
    const bool late = Clock::now() >= deadline;
    return std::unexpected(
        d.error(late ? "timeout" : "unreachable",
                fmt::format("cannot connect to the CLI over SSH at {}: {}", d.where, why)));
  }
  d.connected = true;
  return {};
}

Result<std::string> SshClient::hostKeyFingerprint() {
  Impl& d = *impl_;
  ssh_key raw = nullptr;
  if (ssh_get_server_publickey(d.session.get(), &raw) != SSH_OK) {
    return std::unexpected(
        d.error("unreachable", fmt::format("{} sent no host key: {}", d.where, d.libsshError())));
  }
  Key key(raw);
  unsigned char* hashRaw = nullptr;
  std::size_t hashLen = 0;
  if (ssh_get_publickey_hash(key.get(), SSH_PUBLICKEY_HASH_SHA256, &hashRaw, &hashLen) != 0) {
    return std::unexpected(
        d.error("unreachable", fmt::format("cannot hash the host key of {}", d.where)));
  }
  Hash hash(hashRaw);
  CString text(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash.get(), hashLen));
  if (!text) {
    return std::unexpected(
        d.error("unreachable", fmt::format("cannot format the host key of {}", d.where)));
  }
  return std::string(text.get());
}

Status SshClient::authenticatePassword(std::string_view password) {
  Impl& d = *impl_;
  ssh_session s = d.session.get();
  const std::string pw(password);
  int rc = ssh_userauth_password(s, nullptr, pw.c_str());
  if (rc == SSH_AUTH_SUCCESS) return {};
  if (rc == SSH_AUTH_ERROR) {
    return std::unexpected(d.error("unreachable", fmt::format("SSH authentication at {} failed: {}",
                                                              d.where, d.libsshError())));
  }
  // Some CLIs accept the password only through keyboard-interactive prompts.
  if ((ssh_userauth_list(s, nullptr) & SSH_AUTH_METHOD_INTERACTIVE) != 0) {
    rc = ssh_userauth_kbdint(s, nullptr, nullptr);
    for (int rounds = 0; rc == SSH_AUTH_INFO && rounds < 8; ++rounds) {
      const int prompts = ssh_userauth_kbdint_getnprompts(s);
      for (int i = 0; i < prompts; ++i) {
        if (ssh_userauth_kbdint_setanswer(s, static_cast<unsigned>(i), pw.c_str()) < 0) {
          rc = SSH_AUTH_ERROR;
          break;
        }
      }
      if (rc == SSH_AUTH_ERROR) break;
      rc = ssh_userauth_kbdint(s, nullptr, nullptr);
    }
    if (rc == SSH_AUTH_SUCCESS) return {};
  }
  return std::unexpected(
      d.error("login_failed", fmt::format("the CLI at {} refused the user's password", d.where)));
}

Status SshClient::authenticateKey(const std::filesystem::path& keyFile) {
  Impl& d = *impl_;
  ssh_key raw = nullptr;
  const std::string path = platform::displayPath(keyFile);
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK) {
    return std::unexpected(Error{
        "config",
        fmt::format("{}: key-file {} cannot be read as an unencrypted private key", d.who, path)});
  }
  Key key(raw);
  const int rc = ssh_userauth_publickey(d.session.get(), nullptr, key.get());
  if (rc == SSH_AUTH_SUCCESS) return {};
  if (rc == SSH_AUTH_ERROR) {
    return std::unexpected(d.error("unreachable", fmt::format("SSH authentication at {} failed: {}",
                                                              d.where, d.libsshError())));
  }
  return std::unexpected(
      d.error("login_failed", fmt::format("the CLI at {} refused the key in {}", d.where, path)));
}

Result<SshOutput> SshClient::exec(std::string_view command, Deadline deadline,
                                  std::size_t maxOutput) {
  Impl& d = *impl_;
  if (auto t = d.setTimeout(deadline); !t) return std::unexpected(t.error());
  Channel channel(ssh_channel_new(d.session.get()));
  if (!channel || ssh_channel_open_session(channel.get()) != SSH_OK) {
    return std::unexpected(
        d.error("unreachable",
                fmt::format("cannot open an SSH channel to {}: {}", d.where, d.libsshError())));
  }
  const std::string cmd(command);
  if (ssh_channel_request_exec(channel.get(), cmd.c_str()) != SSH_OK) {
    return std::unexpected(d.error(
        "unreachable", fmt::format("{} refused to run `{}`: {}", d.where, cmd, d.libsshError())));
  }
  SshOutput output;
  std::array<char, 16384> buffer{};
  auto timedOut = [&] {
    return d.error("timeout", fmt::format("`{}` at {} did not finish in time ({} bytes read)", cmd,
                                          d.where, output.out.size()));
  };
  auto readErr = [&]() -> int {
    const int n = ssh_channel_read_nonblocking(channel.get(), buffer.data(),
                                               static_cast<std::uint32_t>(buffer.size()), 1);
    if (n > 0) output.err.append(buffer.data(), static_cast<std::size_t>(n));
    return n;
  };
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::unexpected(timedOut());
    const int slice = static_cast<int>(std::min<long long>(left, 200));
    const int n = ssh_channel_read_timeout(channel.get(), buffer.data(),
                                           static_cast<std::uint32_t>(buffer.size()), 0, slice);
    if (n == SSH_ERROR) {
      return std::unexpected(
          d.error("unreachable", fmt::format("the SSH channel to {} broke while reading `{}`: {}",
                                             d.where, cmd, d.libsshError())));
    }
    if (n > 0) output.out.append(buffer.data(), static_cast<std::size_t>(n));
    if (readErr() == SSH_ERROR) {
      return std::unexpected(d.error(
          "unreachable", fmt::format("the SSH channel to {} broke: {}", d.where, d.libsshError())));
    }
    if (output.out.size() + output.err.size() > maxOutput) {
      return std::unexpected(
          d.error("bad_output",
                  fmt::format("`{}` at {} printed more than {} bytes", cmd, d.where, maxOutput)));
    }
    if (n == 0 && ssh_channel_is_eof(channel.get()) != 0) break;
  }
  while (readErr() > 0) {
  }
  ssh_channel_send_eof(channel.get());
  output.exitStatus = ssh_channel_get_exit_status(channel.get());
  if (Clock::now() > deadline) return std::unexpected(timedOut());
  return output;
}

}  // namespace pass::hpe_3par
