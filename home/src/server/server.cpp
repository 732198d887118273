// `--listen`: where the ingest listener binds.

#include "pass/home/server.hpp"

#include "pass/home/https_listener.hpp"

namespace pass::home {

Status parseListen(std::string_view text, ServerOptions& options) {
  auto address = parseListenAddress(text, "--listen", "usage.listen", "0.0.0.0:9455 or [::1]:9455");
  if (!address) return std::unexpected(address.error());
  options.host = std::move(address->host);
  options.port = address->port;
  return {};
}

}  // namespace pass::home
