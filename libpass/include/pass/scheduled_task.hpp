#pragma once
/// The Windows scheduled task that runs pass-svp.exe: its definition in the Task Scheduler
/// schema (version 1.2, Windows 7 / Server 2008 R2 and later), generated here so that it can be
/// checked on any platform (Wine keeps a registered task's name but drops its triggers and
/// actions). win-svp/ registers it through the Task Scheduler API. docs/install-windows.md.

#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass::task {

inline constexpr std::string_view kDefaultName = "PASS Agent";
inline constexpr unsigned kDefaultEveryMinutes = 5;
inline constexpr unsigned kMinEveryMinutes = 1;
inline constexpr unsigned kMaxEveryMinutes = 1440;

struct Definition {
  std::string name{kDefaultName};  // in the root folder of the Task Scheduler library
  std::string exe;                 // pass-svp.exe, absolute Windows path (UTF-8)
  std::string config;              // agent.xml, absolute Windows path (UTF-8)
  std::string workingDirectory;    // where the task starts; the state's parent
  unsigned everyMinutes = kDefaultEveryMinutes;
  std::string startBoundary;  // local time "YYYY-MM-DDTHH:MM:SS", the first run
};

/// The task's XML. It runs as SYSTEM (S-1-5-18): no password is stored, so a change of the
/// SVP's account passwords never stops monitoring. Every `everyMinutes` from `startBoundary`,
/// indefinitely; a run still going when the next is due is left alone (IgnoreNew); a run is
/// stopped after 3 intervals (at least 10 minutes, at most an hour); a missed start (machine
/// off) runs as soon as possible; batteries, idle and network state never hold it back.
/// Errors ("task"): an interval outside 1..1440 minutes, a path that is not absolute, a
/// malformed start boundary, an empty name or one with a backslash.
Result<std::string> taskXml(const Definition& definition);

/// One argument quoted for a Windows command line so that CommandLineToArgvW (and the
/// C runtime) give it back unchanged: spaces, quotes and trailing backslashes survive.
std::string quoteArgument(std::string_view argument);

}  // namespace pass::task
