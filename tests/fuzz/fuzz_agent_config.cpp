// libFuzzer harness for agent.xml: loadAgentConfig (the schema check of config::parse, then
// agent.xml's own checks) and renderAgentConfig. Built and run by scripts/fuzz.sh (see
// fuzz_hitachi_svp.cpp for the clang 16 note). The schema names every collector's settings,
// so it links the whole of libpass, from the archive fuzz.sh builds.
// sources: libpass/src/*.cpp libpass/src/collectors/*/*.cpp libpass/src/platform/posix/*.cpp
// sources: build/dev/libpass/builtin_code_tables.cpp
// sources: build/dev/libpass/hitachi_svp_default_profiles.cpp
// flags: -DPASS_COLLECTOR_HITACHI_SVP -DPASS_COLLECTOR_HITACHI_DF -DPASS_COLLECTOR_HPE_3PAR
// flags: -DPASS_COLLECTOR_NIMBLE -lpugixml -lcurl -lssh -lssl -lcrypto -lboost_filesystem
// flags: -lboost_program_options
//
// The input is agent.xml, written to a temporary folder (the only file written; loading reads
// no other file). Properties: what loads has an endpoint and a serial for every array, and its
// rendering, the file a bundle carries, loads back to the same configuration.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "pass/config.hpp"
#include "support.hpp"

namespace {

const pass::fuzz::TempDir& folder() {
  static const pass::fuzz::TempDir kDir;
  return kDir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto file = folder().write("agent.xml", text);
  auto cfg = pass::loadAgentConfig(file);
  if (!cfg) {
    check(cfg.error().code.starts_with("config."));
    check(cfg.error().message.starts_with(file.string()));
    return 0;
  }
  check(!cfg->endpoints.empty());
  for (const auto& array : cfg->arrays) check(!array.serial.empty());

  std::string rendered = pass::renderAgentConfig(*cfg);
  auto back = pass::loadAgentConfig(folder().write("agent.xml", rendered));
  if (!back) {
    std::fprintf(stderr, "fuzz_agent_config: the rendering does not load: %s\n%s\n",
                 back.error().message.c_str(), rendered.c_str());
    std::abort();
  }
  check(back->agentId == cfg->agentId);
  check(back->customer == cfg->customer && back->site == cfg->site && back->name == cfg->name);
  check(back->endpoints == cfg->endpoints && back->proxy == cfg->proxy);
  check(back->connectTimeout == cfg->connectTimeout && back->totalTimeout == cfg->totalTimeout);
  check(back->heartbeatInterval == cfg->heartbeatInterval);
  check(back->spool.maxEnvelopes == cfg->spool.maxEnvelopes);
  check(back->spool.maxBytes == cfg->spool.maxBytes);
  check(back->arrays.size() == cfg->arrays.size());
  for (std::size_t i = 0; i < cfg->arrays.size(); ++i) {
    check(back->arrays[i].family == cfg->arrays[i].family);
    check(back->arrays[i].settings == cfg->arrays[i].settings);
  }
  return 0;
}
