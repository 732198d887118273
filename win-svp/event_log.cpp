// The Application event log (event_log.hpp).

#include "event_log.hpp"

#include <windows.h>

#include "messages.h"
#include "platform/windows/text.hpp"

namespace pass::win {

using platform::wide;

void reportEvent(EventType type, std::string_view text) {
  HANDLE source = ::RegisterEventSourceW(nullptr, L"PASS");
  if (source == nullptr) return;
  const WORD kind = type == EventType::kError     ? EVENTLOG_ERROR_TYPE
                    : type == EventType::kWarning ? EVENTLOG_WARNING_TYPE
                                                  : EVENTLOG_INFORMATION_TYPE;
  // The event log keeps at most 31,839 characters per string.
  std::wstring message = wide(text.substr(0, 30000));
  const wchar_t* strings[] = {message.c_str()};
  ::ReportEventW(source, kind, 0, PASS_EVENT_TEXT, nullptr, 1, 0, strings, nullptr);
  ::DeregisterEventSource(source);
}

}  // namespace pass::win
