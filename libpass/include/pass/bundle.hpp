#pragma once
/// Installing an agent bundle (what `pass-home enroll` writes) where the agent will read it:
/// `pass-svp.exe import-bundle`, which the MSI runs with its BUNDLE folder.

#include <filesystem>
#include <string>
#include <vector>

#include "pass/result.hpp"

namespace pass {

/// The files of a bundle, as `pass-home enroll` writes them.
inline const std::vector<std::string>& bundleFiles() {
  static const std::vector<std::string> files = {"agent.xml",     "agent-sign.key",
                                                 "agent-tls.key", "agent-tls.crt",
                                                 "home-ca.crt",   "home-hpke.pub"};
  return files;
}

struct BundleImport {
  std::string agentId;                         // the bundle's agent
  std::vector<std::filesystem::path> written;  // files copied into the target directory
  std::filesystem::path stateDir;              // created (restricted) if it did not exist
  bool replacedSameAgent = false;              // the target held the same agent's older bundle
};

/// Validates the bundle in `from` (every file present, agent.xml valid, keys readable) and
/// copies it into `toDir` durably; the private keys are readable only by their owner (SYSTEM
/// and Administrators on Windows), and so is the state directory. The state (sequence numbers,
/// spool, cursors) is kept: a bundle of the same agent may be imported again (renewed
/// certificates, new endpoints). A bundle of another agent is refused while `toDir` holds an
/// agent whose state exists ("bundle.other_agent"), so that a spool of undelivered alerts is
/// never orphaned by accident. Errors: "bundle.missing", "bundle.invalid", "bundle.other_agent",
/// "io_error".
Result<BundleImport> importBundle(const std::filesystem::path& from,
                                  const std::filesystem::path& toDir);

}  // namespace pass
