#pragma once
/// The agent's command line, shared by pass-agent (Linux appliance) and pass-svp.exe (Windows
/// SVP): run, parse, test, check-config, status, forget-pin, config-reference. A program adds
/// its own commands (pass-svp.exe: install-task, remove-task). Exit codes are an interface
/// (cron, systemd and Task Scheduler act on them); docs/agent.md lists them.

#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "pass/agent.hpp"
#include "pass/config.hpp"

namespace pass::cli {

enum Exit : int {
  kOk = 0,
  kFailure = 1,          // runtime failure: keys unreadable, state I/O, another run holds the lock
  kConfigError = 2,      // bad command line or agent.xml; nothing was sent
  kSpoolFull = 3,        // an envelope could not be stored: the spool is full of alerts
  kTestRefused = 4,      // test: the home refused the message (4xx)
  kTestUnreachable = 5,  // test: no home endpoint gave an answer (network, TLS, 5xx)
  kClockDisagrees = 6,   // run: the home refused envelopes for this host's clock; they are held
  kQuarantined = 7,      // run: the home refused an envelope for good; it is in quarantine
  kStorageFailed = 8,    // run: new envelopes or state could not be written (disk full?)
};

/// An option a program's own command takes: `--name VALUE`.
struct ExtraOption {
  std::string name;
  std::string valueName;    // for the usage text, e.g. "MINUTES"
  std::string description;  // one line
};

/// Arguments of a program's own command: the option values given (name → value, UTF-8) and the
/// loaded configuration when the command needs one.
struct ExtraArgs {
  std::map<std::string, std::string> options;
  const AgentConfig* config = nullptr;
  std::string configPath;  // as given (or the default), UTF-8
};

struct ExtraCommand {
  std::string name;
  std::string summary;  // one line in the usage text
  bool needsConfig = true;
  std::function<int(const ExtraArgs&)> run{};
};

struct Program {
  std::string name;           // "pass-agent"; prefixes every message
  std::string defaultConfig;  // used when --config is not given
  std::vector<ExtraCommand> commands{};
  std::vector<ExtraOption> options{};
  /// Called after each `run` that completed (pass-svp.exe reports problems to the Event Log).
  std::function<void(const RunSummary&)> afterRun{};
};

/// Runs one command line; `args` are the arguments after the program name, UTF-8. Messages go
/// to `out` and `err`. Never throws.
int agentMain(const Program& program, const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

}  // namespace pass::cli
