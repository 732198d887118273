// pass-agent: the Linux appliance's entry point. The commands are libpass's (agent_cli.hpp);
// docs/agent.md describes them and their exit codes.

#include <iostream>
#include <string>
#include <vector>

#include <malloc.h>

#include "pass/agent_cli.hpp"

int main(int argc, char** argv) {
  // The run's collector threads would each get a malloc arena of their own; one shared arena
  // keeps the agent's peak RSS 0.8 MiB lower on a 100-array run (docs/performance.md), and
  // the threads spend their time waiting on arrays, not on the allocator's lock.
  mallopt(M_ARENA_MAX, 1);
  const pass::cli::Program program{.name = "pass-agent", .defaultConfig = "/etc/pass/agent.xml"};
  return pass::cli::agentMain(program, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                              std::cerr);
}
