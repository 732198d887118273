// `--listen` and Server, the ingest listener alone: a Runtime without the admin API.

#include "pass/home/server.hpp"

#include <fmt/format.h>
#include <boost/asio/ip/address.hpp>

#include "pass/home/runtime.hpp"

namespace pass::home {

Status parseListen(std::string_view text, ServerOptions& options) {
  auto bad = [&](std::string_view why) {
    return fail("usage.listen", fmt::format("--listen '{}': {} (expected HOST:PORT, e.g. "
                                            "0.0.0.0:9455 or [::1]:9455)",
                                            text, why));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  auto host = text.substr(0, colon);
  auto portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) return bad("no host");
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return bad("the host is not an IP address");
  unsigned port = 0;
  if (portText.empty() || portText.size() > 5) return bad("bad port");
  for (char c : portText) {
    if (c < '0' || c > '9') return bad("bad port");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return bad("port above 65535");
  options.host = std::string(host);
  options.port = static_cast<std::uint16_t>(port);
  return {};
}

Server::Server(std::unique_ptr<Runtime> runtime) : runtime_(std::move(runtime)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(const ServerOptions& options, Logger& log) {
  auto runtime =
      Runtime::create(RuntimeOptions{.ingest = options, .admin = {}, .tickets = false}, log);
  if (!runtime) return std::unexpected(runtime.error());
  return std::unique_ptr<Server>(new Server(std::move(*runtime)));
}

std::uint16_t Server::port() const { return runtime_->ingestPort(); }

Status Server::run(bool handleSignals) { return runtime_->run(handleSignals); }

void Server::stop() { runtime_->stop(); }

ServerStats Server::stats() const { return runtime_->stats(); }

}  // namespace pass::home
