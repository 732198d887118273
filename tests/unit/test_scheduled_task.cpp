// The scheduled task's XML (libpass/src/scheduled_task.cpp) against the rules of the Task
// Scheduler schema that Windows validates on registration (ITaskFolder::RegisterTask refuses a
// definition that breaks them). Wine stores a task without its triggers and actions, so this
// is where they are checked. The rules below are the schema's, restated for the elements the
// task uses: which children each element may have, where the schema fixes their order
// (xs:sequence) and where it does not (xs:all), and the value types.

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "pass/scheduled_task.hpp"

using namespace pass;

namespace {

constexpr const char* kNamespace = "http://schemas.microsoft.com/windows/2004/02/mit/task";

struct ElementRule {
  std::vector<std::string> children;  // allowed, in schema order
  bool ordered = false;               // xs:sequence (order fixed) or xs:all
  std::set<std::string> required{};
};

// Element (by its path from Task) → what the schema allows inside.
const std::map<std::string, ElementRule>& schemaRules() {
  static const std::map<std::string, ElementRule> rules = {
      {"Task",
       {{"RegistrationInfo", "Triggers", "Settings", "Data", "Principals", "Actions"},
        false,
        {"Actions"}}},
      {"Task/RegistrationInfo",
       {{"URI", "SecurityDescriptor", "Source", "Date", "Author", "Version", "Description",
         "Documentation"}}},
      {"Task/Triggers",
       {{"BootTrigger", "RegistrationTrigger", "IdleTrigger", "TimeTrigger", "EventTrigger",
         "LogonTrigger", "SessionStateChangeTrigger", "CalendarTrigger"}}},
      // triggerBaseType is a sequence; timeTriggerType appends RandomDelay.
      {"Task/Triggers/TimeTrigger",
       {{"Enabled", "StartBoundary", "EndBoundary", "Repetition", "ExecutionTimeLimit",
         "RandomDelay"},
        true}},
      {"Task/Triggers/TimeTrigger/Repetition",
       {{"Interval", "Duration", "StopAtDurationEnd"}, false, {"Interval"}}},
      {"Task/Principals", {{"Principal"}}},
      {"Task/Principals/Principal",
       {{"UserId", "LogonType", "GroupId", "DisplayName", "RunLevel", "ProcessTokenSidType",
         "RequiredPrivileges"}}},
      {"Task/Settings",
       {{"AllowStartOnDemand", "RestartOnFailure", "MultipleInstancesPolicy",
         "DisallowStartIfOnBatteries", "StopIfGoingOnBatteries", "AllowHardTerminate",
         "StartWhenAvailable", "NetworkProfileName", "RunOnlyIfNetworkAvailable", "WakeToRun",
         "Enabled", "Hidden", "DeleteExpiredTaskAfter", "IdleSettings", "NetworkSettings",
         "ExecutionTimeLimit", "Priority", "RunOnlyIfIdle"}}},
      {"Task/Settings/IdleSettings",
       {{"Duration", "WaitTimeout", "StopOnIdleEnd", "RestartOnIdle"}}},
      {"Task/Actions", {{"Exec", "ComHandler", "SendEmail", "ShowMessage"}}},
      // execType: actionBaseType + a sequence.
      {"Task/Actions/Exec", {{"Command", "Arguments", "WorkingDirectory"}, true, {"Command"}}},
  };
  return rules;
}

const std::set<std::string> kBooleans = {"Enabled",
                                         "StopAtDurationEnd",
                                         "AllowStartOnDemand",
                                         "DisallowStartIfOnBatteries",
                                         "StopIfGoingOnBatteries",
                                         "AllowHardTerminate",
                                         "StartWhenAvailable",
                                         "RunOnlyIfNetworkAvailable",
                                         "WakeToRun",
                                         "Hidden",
                                         "StopOnIdleEnd",
                                         "RestartOnIdle",
                                         "RunOnlyIfIdle"};
const std::set<std::string> kDurations = {"Interval", "Duration", "ExecutionTimeLimit",
                                          "DeleteExpiredTaskAfter", "RandomDelay"};

/// Every violation of the rules above, as "path: what".
void check(pugi::xml_node node, const std::string& path, std::vector<std::string>& problems) {
  const auto& rules = schemaRules();
  auto rule = rules.find(path);
  const std::string name = node.name();
  if (rule == rules.end()) {
    // A leaf: check its value type.
    const std::string value = node.text().get();
    if (node.first_child().type() == pugi::node_element) {
      problems.push_back(path + ": no rule for an element with children");
    }
    if (kBooleans.count(name) && value != "true" && value != "false") {
      problems.push_back(path + ": not a boolean: " + value);
    }
    if (kDurations.count(name) &&
        !std::regex_match(value, std::regex(R"(P(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?)"))) {
      problems.push_back(path + ": not a duration: " + value);
    }
    return;
  }
  std::vector<std::string> seen;
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    const std::string childName = child.name();
    auto at = std::find(rule->second.children.begin(), rule->second.children.end(), childName);
    if (at == rule->second.children.end()) {
      problems.push_back(path + ": " + childName + " is not allowed here");
      continue;
    }
    const bool repeatable =
        path == "Task/Triggers" || path == "Task/Principals" || path == "Task/Actions";
    if (!repeatable && std::count(seen.begin(), seen.end(), childName)) {
      problems.push_back(path + ": " + childName + " twice");
    }
    if (rule->second.ordered && !seen.empty()) {
      auto previous =
          std::find(rule->second.children.begin(), rule->second.children.end(), seen.back());
      if (at < previous) problems.push_back(path + ": " + childName + " out of order");
    }
    seen.push_back(childName);
    check(child, path + "/" + childName, problems);
  }
  for (const auto& needed : rule->second.required) {
    if (std::find(seen.begin(), seen.end(), needed) == seen.end()) {
      problems.push_back(path + ": " + needed + " is missing");
    }
  }
}

/// Splits a command line the way CommandLineToArgvW does (for arguments after the program).
std::vector<std::string> splitCommandLine(const std::string& line) {
  std::vector<std::string> args;
  std::string current;
  bool inQuotes = false, any = false;
  for (std::size_t i = 0; i < line.size();) {
    const char c = line[i];
    if (c == '\\') {
      std::size_t n = 0;
      while (i < line.size() && line[i] == '\\') ++n, ++i;
      if (i < line.size() && line[i] == '"') {
        current.append(n / 2, '\\');
        if (n % 2 == 1) {
          current.push_back('"');
          ++i;
        }
      } else {
        current.append(n, '\\');
      }
      any = true;
      continue;
    }
    if (c == '"') {
      inQuotes = !inQuotes;
      any = true;
      ++i;
      continue;
    }
    if ((c == ' ' || c == '\t') && !inQuotes) {
      if (any) args.push_back(current);
      current.clear();
      any = false;
      ++i;
      continue;
    }
    current.push_back(c);
    any = true;
    ++i;
  }
  if (any) args.push_back(current);
  return args;
}

task::Definition sample() {
  return task::Definition{.name = "PASS Agent",
                          .exe = "C:\\Program Files\\PASS\\pass-svp.exe",
                          .config = "C:\\ProgramData\\PASS\\agent.xml",
                          .workingDirectory = "C:\\ProgramData\\PASS",
                          .everyMinutes = 5,
                          .startBoundary = "2026-11-28T00:00:00"};
}

pugi::xml_document parse(const std::string& xml) {
  pugi::xml_document doc;
  auto parsed = doc.load_string(xml.c_str());
  REQUIRE_MESSAGE(parsed, parsed.description());
  return doc;
}

}  // namespace

TEST_CASE("the task definition keeps the Task Scheduler schema's rules") {
  auto xml = task::taskXml(sample());
  REQUIRE_MESSAGE(xml.has_value(), (xml ? "" : xml.error().message));
  auto doc = parse(*xml);
  pugi::xml_node root = doc.document_element();
  CHECK(std::string(root.name()) == "Task");
  CHECK(std::string(root.attribute("xmlns").value()) == kNamespace);
  CHECK(std::string(root.attribute("version").value()) == "1.2");
  std::vector<std::string> problems;
  check(root, "Task", problems);
  CHECK_MESSAGE(problems.empty(), fmt::format("{}", fmt::join(problems, "\n")));
  // The actions' Context names a principal that exists.
  const std::string context = root.child("Actions").attribute("Context").value();
  CHECK_FALSE(context.empty());
  CHECK(root.child("Principals").find_child_by_attribute("Principal", "id", context.c_str()));
}

TEST_CASE("the checker itself catches what Windows refuses") {
  auto xml = task::taskXml(sample());
  REQUIRE(xml.has_value());
  auto doc = parse(*xml);
  pugi::xml_node trigger = doc.document_element().child("Triggers").child("TimeTrigger");
  // Move Enabled after Repetition: the trigger's elements are a sequence.
  trigger.append_move(trigger.child("Enabled"));
  doc.document_element().child("Settings").append_child("Colour").text() = "blue";
  doc.document_element().child("Settings").child("Hidden").text() = "no";
  std::vector<std::string> problems;
  check(doc.document_element(), "Task", problems);
  CHECK(problems.size() == 3);
}

TEST_CASE("the task runs pass-svp.exe run as SYSTEM every N minutes, one at a time") {
  auto d = sample();
  d.everyMinutes = 15;
  auto doc = parse(task::taskXml(d).value());
  pugi::xml_node root = doc.document_element();
  CHECK(std::string(root.child("Principals").child("Principal").child_value("UserId")) ==
        "S-1-5-18");
  pugi::xml_node trigger = root.child("Triggers").child("TimeTrigger");
  CHECK(std::string(trigger.child("Repetition").child_value("Interval")) == "PT15M");
  CHECK_FALSE(trigger.child("Repetition").child("Duration"));  // indefinitely
  CHECK(std::string(trigger.child_value("StartBoundary")) == "2026-11-28T00:00:00");
  pugi::xml_node settings = root.child("Settings");
  CHECK(std::string(settings.child_value("MultipleInstancesPolicy")) == "IgnoreNew");
  CHECK(std::string(settings.child_value("DisallowStartIfOnBatteries")) == "false");
  CHECK(std::string(settings.child_value("StartWhenAvailable")) == "true");
  CHECK(std::string(settings.child_value("ExecutionTimeLimit")) == "PT45M");
  pugi::xml_node exec = root.child("Actions").child("Exec");
  CHECK(std::string(exec.child_value("Command")) == "C:\\Program Files\\PASS\\pass-svp.exe");
  CHECK(splitCommandLine(exec.child_value("Arguments")) ==
        std::vector<std::string>{"run", "--config", "C:\\ProgramData\\PASS\\agent.xml"});
  // The time limit is 3 intervals, within 10 to 60 minutes.
  d.everyMinutes = 1;
  CHECK(std::string(parse(task::taskXml(d).value())
                        .document_element()
                        .child("Settings")
                        .child_value("ExecutionTimeLimit")) == "PT10M");
  d.everyMinutes = 1440;
  CHECK(std::string(parse(task::taskXml(d).value())
                        .document_element()
                        .child("Settings")
                        .child_value("ExecutionTimeLimit")) == "PT60M");
}

TEST_CASE("paths with spaces, quotes, non-ASCII names and trailing backslashes survive") {
  for (std::string config :
       {"C:\\ProgramData\\PASS Agent\\agent.xml", "C:\\Données\\Überwachung 監視\\agent.xml",
        "D:\\odd \"name\"\\a.xml", "C:\\trailing dir\\", "\\\\server\\share\\agent.xml"}) {
    auto d = sample();
    d.config = config;
    auto xml = task::taskXml(d);
    REQUIRE(xml.has_value());
    auto doc = parse(*xml);
    CHECK(splitCommandLine(doc.document_element().child("Actions").child("Exec").child_value(
              "Arguments")) == std::vector<std::string>{"run", "--config", config});
  }
  CHECK(task::quoteArgument("plain") == "plain");
  CHECK(task::quoteArgument("") == "\"\"");
  CHECK(task::quoteArgument("a b\\") == "\"a b\\\\\"");
}

TEST_CASE("a definition Windows would refuse is an error that says why") {
  auto d = sample();
  d.everyMinutes = 0;
  auto r = task::taskXml(d);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == "task");
  CHECK(r.error().message.find("1 to 1440") != std::string::npos);
  d = sample();
  d.everyMinutes = 1441;
  CHECK_FALSE(task::taskXml(d).has_value());
  d = sample();
  d.exe = "pass-svp.exe";
  r = task::taskXml(d);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("pass-svp.exe path \"pass-svp.exe\" is not an absolute") !=
        std::string::npos);
  d = sample();
  d.startBoundary = "2026-11-28 00:00";
  CHECK_FALSE(task::taskXml(d).has_value());
  d = sample();
  d.name = "sub\\folder";
  CHECK_FALSE(task::taskXml(d).has_value());
}
