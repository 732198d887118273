// pass-svp.exe: the agent on a Hitachi/HP SVP. The agent's commands are libpass's
// (agent_cli.hpp, docs/agent.md); this adds import-bundle, install-task and remove-task, the log
// file under the configuration's folder and the Event Log. docs/install-windows.md.

#include <windows.h>

#include <shlobj.h>

#include <charconv>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "event_log.hpp"
#include "log_file.hpp"
#include "pass/agent_cli.hpp"
#include "pass/bundle.hpp"
#include "pass/scheduled_task.hpp"
#include "platform/fs.hpp"
#include "platform/windows/text.hpp"
#include "task_scheduler.hpp"

namespace {

using pass::cli::ExtraArgs;
using pass::platform::displayPath;
using pass::platform::pathFromUtf8;

// Commands whose output goes to the log file (and, when they fail, to the Event Log): what the
// scheduled task and the installer run, and what an engineer changes the agent with.
constexpr const char* kLoggedCommands[] = {"run",         "test",          "install-task",
                                           "remove-task", "import-bundle", "forget-pin"};

std::string programData() {
  PWSTR path = nullptr;
  std::string out = "C:\\ProgramData";
  if (SUCCEEDED(::SHGetKnownFolderPath(FOLDERID_ProgramData, 0, nullptr, &path))) {
    out = pass::platform::utf8(path);
  }
  ::CoTaskMemFree(path);
  return out;
}

std::string thisExe() {
  std::wstring buffer(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = ::GetModuleFileNameW(nullptr, buffer.data(), static_cast<DWORD>(buffer.size()));
    if (n < buffer.size()) return pass::platform::utf8(std::wstring_view(buffer.data(), n));
    buffer.resize(buffer.size() * 2);
  }
}

std::string localNow() {
  SYSTEMTIME t;
  ::GetLocalTime(&t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:00", t.wYear, t.wMonth, t.wDay, t.wHour,
                     t.wMinute);
}

std::filesystem::path absoluteConfig(const std::string& configPath) {
  std::error_code ec;
  auto p = std::filesystem::absolute(pathFromUtf8(configPath), ec);
  return ec ? pathFromUtf8(configPath) : p.lexically_normal();
}

int installTask(const ExtraArgs& args, std::ostream& out, std::ostream& err) {
  unsigned every = pass::task::kDefaultEveryMinutes;
  if (auto it = args.options.find("every"); it != args.options.end()) {
    const auto& text = it->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), every);
    if (ec != std::errc() || end != text.data() + text.size()) {
      err << fmt::format("pass-svp: --every \"{}\" is not a number of minutes ({} to {})\n", text,
                         pass::task::kMinEveryMinutes, pass::task::kMaxEveryMinutes);
      return pass::cli::kConfigError;
    }
  }
  const auto config = absoluteConfig(args.configPath);
  const pass::task::Definition definition{.name = std::string(pass::task::kDefaultName),
                                          .exe = thisExe(),
                                          .config = displayPath(config),
                                          .workingDirectory = displayPath(config.parent_path()),
                                          .everyMinutes = every,
                                          .startBoundary = localNow()};
  auto xml = pass::task::taskXml(definition);
  if (!xml) {
    err << "pass-svp: " << xml.error().message << "\n";
    return pass::cli::kConfigError;
  }
  if (auto registered = pass::win::registerTask(definition.name, *xml); !registered) {
    err << "pass-svp: " << registered.error().message << "\n";
    return pass::cli::kFailure;
  }
  out << fmt::format(
      "install-task: \"{}\" runs \"{}\" run --config \"{}\" every {} minute(s) as SYSTEM\n",
      definition.name, definition.exe, definition.config, every);
  return pass::cli::kOk;
}

int removeTask(std::ostream& out, std::ostream& err) {
  auto deleted = pass::win::deleteTask(std::string(pass::task::kDefaultName));
  if (!deleted) {
    err << "pass-svp: " << deleted.error().message << "\n";
    return pass::cli::kFailure;
  }
  out << fmt::format("remove-task: \"{}\" {}\n", pass::task::kDefaultName,
                     *deleted ? "removed" : "was not registered");
  return pass::cli::kOk;
}

int importBundle(const ExtraArgs& args, std::ostream& out, std::ostream& err) {
  auto from = args.options.find("from");
  if (from == args.options.end()) {
    err << "pass-svp: import-bundle needs --from DIR, the folder `pass-home enroll --out` "
           "wrote\n";
    return pass::cli::kConfigError;
  }
  const auto toDir = absoluteConfig(args.configPath).parent_path();
  auto imported = pass::importBundle(pathFromUtf8(from->second), toDir);
  if (!imported) {
    err << "pass-svp: " << imported.error().message << " [" << imported.error().code << "]\n";
    return imported.error().code.starts_with("bundle.") ? pass::cli::kConfigError
                                                        : pass::cli::kFailure;
  }
  out << fmt::format("import-bundle: agent {} {} in {}\n", imported->agentId,
                     imported->replacedSameAgent ? "updated" : "installed", displayPath(toDir));
  if (!imported->stateDir.empty()) {
    out << fmt::format("import-bundle: state directory {} created\n",
                       displayPath(imported->stateDir));
  }
  return pass::cli::kOk;
}

void reportRun(const pass::RunSummary& summary) {
  std::string problems;
  for (const auto& array : summary.arrays) {
    if (array.status.state == "ok") continue;
    problems += fmt::format("array {} {}: {}: {}\n", array.array.family, array.array.serial,
                            array.status.state, array.status.message);
  }
  if (summary.stoppedBy) {
    problems += fmt::format("home not reachable, {} envelope(s) wait in the spool: {} ({}): {}\n",
                            summary.remaining, summary.stoppedBy->endpoint,
                            summary.stoppedBy->errorCode, summary.stoppedBy->detail);
  }
  if (!problems.empty()) pass::win::reportEvent(pass::win::EventType::kWarning, problems);
}

/// The command and --config of a command line, for the log (agentMain parses it for real).
std::pair<std::string, std::string> commandAndConfig(const std::vector<std::string>& args,
                                                     const std::string& defaultConfig) {
  std::string command, config = defaultConfig;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config = args[++i];
    } else if (args[i].starts_with("--config=")) {
      config = args[i].substr(9);
    } else if (command.empty() && !args[i].starts_with("-")) {
      command = args[i];
    }
  }
  return {command, config};
}

}  // namespace

int wmain(int argc, wchar_t** argv) {
  ::SetConsoleOutputCP(CP_UTF8);
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.push_back(pass::platform::utf8(argv[i]));

  std::ostringstream out, err;
  pass::cli::Program program{
      .name = "pass-svp",
      .defaultConfig = programData() + "\\PASS\\agent.xml",
      .commands = {{.name = "import-bundle",
                    .summary = "install an agent bundle (--from DIR) beside --config",
                    .needsConfig = false,
                    .run = [&](const ExtraArgs& a) { return importBundle(a, out, err); }},
                   {.name = "install-task",
                    .summary = "register the scheduled task: run as SYSTEM every --every minutes",
                    .needsConfig = true,
                    .run = [&](const ExtraArgs& a) { return installTask(a, out, err); }},
                   {.name = "remove-task",
                    .summary = "delete the scheduled task",
                    .needsConfig = false,
                    .run = [&](const ExtraArgs&) { return removeTask(out, err); }}},
      .options = {{.name = "every",
                   .valueName = "MINUTES",
                   .description = "install-task: minutes between runs (1 to 1440, default 5)"},
                  {.name = "from",
                   .valueName = "DIR",
                   .description = "import-bundle: the bundle folder from pass-home enroll"}},
      .afterRun = reportRun};

  const int rc = pass::cli::agentMain(program, args, out, err);
  std::cout << out.str() << std::flush;
  std::cerr << err.str() << std::flush;

  const auto [command, config] = commandAndConfig(args, program.defaultConfig);
  bool logged = false;
  for (const char* c : kLoggedCommands) logged = logged || command == c;
  if (logged) {
    const auto logDir = absoluteConfig(config).parent_path() / "logs";
    pass::win::appendLog(logDir, command, out.str() + err.str() + fmt::format("exit {}\n", rc));
    if (rc != pass::cli::kOk) {
      pass::win::reportEvent(
          pass::win::EventType::kError,
          fmt::format("pass-svp {} failed (exit {}):\n{}", command, rc, err.str()));
    } else if (command != "run" && command != "test") {
      pass::win::reportEvent(pass::win::EventType::kInformation, out.str());
    }
  }
  return rc;
}
