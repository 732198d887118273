// Installing an agent bundle into the agent's configuration directory (pass/bundle.hpp).

#include "pass/bundle.hpp"

#include <fmt/format.h>

#include "pass/config.hpp"
#include "platform/fs.hpp"

namespace pass {
namespace {

using platform::displayPath;

bool isPrivateKey(const std::string& name) {
  return name == "agent-sign.key" || name == "agent-tls.key";
}

bool hasContent(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec) &&
         std::filesystem::directory_iterator(dir, ec) != std::filesystem::directory_iterator();
}

}  // namespace

Result<BundleImport> importBundle(const std::filesystem::path& from,
                                  const std::filesystem::path& toDir) {
  for (const auto& name : bundleFiles()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(from / name, ec)) {
      return fail("bundle.missing",
                  fmt::format("{}: the bundle has no {}; a bundle is the folder `pass-home enroll "
                              "--out` wrote, with exactly: agent.xml, agent-sign.key, "
                              "agent-tls.key, agent-tls.crt, home-ca.crt, home-hpke.pub",
                              displayPath(from), name));
    }
  }
  auto incoming = loadAgentConfig(from / "agent.xml");
  if (!incoming) return fail("bundle.invalid", incoming.error().message);
  const std::string agentId = formatUuid(incoming->agentId);

  BundleImport result{.agentId = agentId, .written = {}, .stateDir = {}};
  const auto target = toDir / "agent.xml";
  std::error_code ec;
  if (std::filesystem::exists(target, ec)) {
    if (auto existing = loadAgentConfig(target)) {
      const std::string existingId = formatUuid(existing->agentId);
      if (existingId == agentId) {
        result.replacedSameAgent = true;
      } else if (hasContent(existing->stateDir)) {
        return fail(
            "bundle.other_agent",
            fmt::format("{} is agent {}, whose state (sequence numbers, spool of "
                        "undelivered envelopes) is in {}; this bundle is agent {}. To "
                        "replace the agent: remove the task, check `status` shows an "
                        "empty spool, delete that state directory, then import again",
                        displayPath(target), existingId, displayPath(existing->stateDir), agentId));
      }
    }
  }

  std::filesystem::create_directories(toDir, ec);
  if (ec) {
    return fail("io_error", fmt::format("cannot create {}: {}", displayPath(toDir), ec.message()));
  }
  // agent.xml last: until it is replaced, the old bundle stays whole.
  for (auto it = bundleFiles().rbegin(); it != bundleFiles().rend(); ++it) {
    auto content = platform::readFile(from / *it);
    if (!content) return std::unexpected(content.error());
    if (auto written = platform::writeFileAtomic(toDir / *it, *content, isPrivateKey(*it));
        !written) {
      return std::unexpected(written.error());
    }
    result.written.push_back(toDir / *it);
  }

  auto installed = loadAgentConfig(target);
  if (!installed) return fail("bundle.invalid", installed.error().message);
  if (!std::filesystem::exists(installed->stateDir, ec)) {
    std::filesystem::create_directories(installed->stateDir, ec);
    if (ec) {
      return fail("io_error", fmt::format("cannot create the state directory {}: {}",
                                          displayPath(installed->stateDir), ec.message()));
    }
    if (auto restricted = platform::makePrivateDirectory(installed->stateDir); !restricted) {
      return std::unexpected(restricted.error());
    }
    result.stateDir = installed->stateDir;
  }
  return result;
}

}  // namespace pass
