#pragma once
// Registering pass-svp.exe's scheduled task through the Task Scheduler 2.0 COM API.

#include <string>

#include "pass/result.hpp"

namespace pass::win {

/// Registers (or replaces) the task `name` in the root folder from its XML definition
/// (pass/scheduled_task.hpp) to run as SYSTEM. Needs an elevated (administrator) caller.
/// Errors ("task"): COM or Task Scheduler failures, with the system's text and what to do.
Status registerTask(const std::string& name, const std::string& xml);

/// Deletes the task; true when it existed, false when there was none.
Result<bool> deleteTask(const std::string& name);

}  // namespace pass::win
