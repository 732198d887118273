// `--listen` and Server, the ingest listener alone: a Runtime without the admin API.

#include "pass/home/server.hpp"

#include "pass/home/https_listener.hpp"
#include "pass/home/runtime.hpp"

namespace pass::home {

Status parseListen(std::string_view text, ServerOptions& options) {
  auto address = parseListenAddress(text, "--listen", "usage.listen", "0.0.0.0:9455 or [::1]:9455");
  if (!address) return std::unexpected(address.error());
  options.host = std::move(address->host);
  options.port = address->port;
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
