// The scheduled task's definition in the Task Scheduler schema (docs/install-windows.md).

#include "pass/scheduled_task.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>
#include <pugixml.hpp>

namespace pass::task {
namespace {

constexpr std::string_view kCode = "task";
constexpr std::string_view kNamespace = "http://schemas.microsoft.com/windows/2004/02/mit/task";
constexpr std::string_view kSystemSid = "S-1-5-18";

bool isAbsoluteWindowsPath(std::string_view p) {
  const bool drive = p.size() >= 3 && std::isalpha(static_cast<unsigned char>(p[0])) &&
                     p[1] == ':' && (p[2] == '\\' || p[2] == '/');
  const bool unc = p.size() >= 3 && p[0] == '\\' && p[1] == '\\' && p[2] != '\\';
  return drive || unc;
}

bool isStartBoundary(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS
  if (s.size() != 19) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (i == 4 || i == 7)     ? c == '-'
                    : i == 10              ? c == 'T'
                    : (i == 13 || i == 16) ? c == ':'
                                           : std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (!ok) return false;
  }
  return true;
}

void text(pugi::xml_node parent, const char* name, std::string_view value) {
  parent.append_child(name).text().set(std::string(value).c_str());
}

}  // namespace

std::string quoteArgument(std::string_view argument) {
  const bool plain = !argument.empty() && argument.find_first_of(" \t\n\v\"") == std::string::npos;
  if (plain) return std::string(argument);
  // Backslashes are literal except before a quote: there they escape, so a run of them before
  // a quote (or before the closing quote) is doubled.
  std::string out = "\"";
  std::size_t backslashes = 0;
  for (char c : argument) {
    if (c == '\\') {
      ++backslashes;
      continue;
    }
    if (c == '"') {
      out.append(backslashes * 2 + 1, '\\');
    } else {
      out.append(backslashes, '\\');
    }
    backslashes = 0;
    out.push_back(c);
  }
  out.append(backslashes * 2, '\\');
  out.push_back('"');
  return out;
}

Result<std::string> taskXml(const Definition& d) {
  if (d.everyMinutes < kMinEveryMinutes || d.everyMinutes > kMaxEveryMinutes) {
    return fail(std::string(kCode),
                fmt::format("the task runs every {} minutes; it must be {} to {}", d.everyMinutes,
                            kMinEveryMinutes, kMaxEveryMinutes));
  }
  if (d.name.empty() || d.name.find('\\') != std::string::npos) {
    return fail(std::string(kCode),
                fmt::format("task name \"{}\" must be non-empty and without a backslash", d.name));
  }
  for (const auto& [what, path] :
       {std::pair{"pass-svp.exe", &d.exe}, std::pair{"configuration", &d.config},
        std::pair{"working directory", &d.workingDirectory}}) {
    if (!isAbsoluteWindowsPath(*path)) {
      return fail(std::string(kCode),
                  fmt::format("the task's {} path \"{}\" is not an absolute Windows path "
                              "(like C:\\ProgramData\\PASS)",
                              what, *path));
    }
  }
  if (!isStartBoundary(d.startBoundary)) {
    return fail(std::string(kCode),
                fmt::format("start boundary \"{}\" is not YYYY-MM-DDTHH:MM:SS", d.startBoundary));
  }
  const unsigned limitMinutes = std::clamp(3 * d.everyMinutes, 10U, 60U);

  pugi::xml_document doc;
  pugi::xml_node task = doc.append_child("Task");
  task.append_attribute("version") = "1.2";
  task.append_attribute("xmlns") = std::string(kNamespace).c_str();

  pugi::xml_node info = task.append_child("RegistrationInfo");
  text(info, "Author", "PASS");
  text(info, "Description",
       "PASS (Pro-Active Seamless Support): collects new SIM alerts from this SVP and sends "
       "them, with a heartbeat, to the PASS home. Runs as SYSTEM; docs/install-windows.md.");
  text(info, "URI", "\\" + d.name);

  // A trigger's common elements are an xs:sequence: Enabled, StartBoundary, EndBoundary,
  // Repetition, ExecutionTimeLimit. (The other parts are xs:all.) No Duration: indefinitely.
  pugi::xml_node trigger = task.append_child("Triggers").append_child("TimeTrigger");
  text(trigger, "Enabled", "true");
  text(trigger, "StartBoundary", d.startBoundary);
  pugi::xml_node repetition = trigger.append_child("Repetition");
  text(repetition, "Interval", fmt::format("PT{}M", d.everyMinutes));
  text(repetition, "StopAtDurationEnd", "false");

  pugi::xml_node principal = task.append_child("Principals").append_child("Principal");
  principal.append_attribute("id") = "System";
  text(principal, "UserId", kSystemSid);
  text(principal, "RunLevel", "HighestAvailable");

  pugi::xml_node settings = task.append_child("Settings");
  text(settings, "MultipleInstancesPolicy", "IgnoreNew");
  text(settings, "DisallowStartIfOnBatteries", "false");
  text(settings, "StopIfGoingOnBatteries", "false");
  text(settings, "AllowHardTerminate", "true");
  text(settings, "StartWhenAvailable", "true");
  text(settings, "RunOnlyIfNetworkAvailable", "false");
  pugi::xml_node idle = settings.append_child("IdleSettings");
  text(idle, "StopOnIdleEnd", "false");
  text(idle, "RestartOnIdle", "false");
  text(settings, "AllowStartOnDemand", "true");
  text(settings, "Enabled", "true");
  text(settings, "Hidden", "false");
  text(settings, "RunOnlyIfIdle", "false");
  text(settings, "WakeToRun", "false");
  text(settings, "ExecutionTimeLimit", fmt::format("PT{}M", limitMinutes));
  text(settings, "Priority", "7");

  pugi::xml_node actions = task.append_child("Actions");
  actions.append_attribute("Context") = "System";
  pugi::xml_node exec = actions.append_child("Exec");
  text(exec, "Command", d.exe);
  text(exec, "Arguments", "run --config " + quoteArgument(d.config));
  text(exec, "WorkingDirectory", d.workingDirectory);

  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration, pugi::encoding_utf8);
  return out.str();
}

}  // namespace pass::task
