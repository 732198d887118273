#pragma once
// Entries in the Windows Application event log, source "PASS" (the MSI registers it with
// pass-svp.exe's message table).

#include <string_view>

namespace pass::win {

enum class EventType { kInformation, kWarning, kError };

/// Writes one entry; failures are ignored (the log file and the exit code still tell).
void reportEvent(EventType type, std::string_view text);

}  // namespace pass::win
