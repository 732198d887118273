#pragma once
/// Times as people and logs read them: ISO 8601 in UTC, to the second.

#include <cstdint>
#include <string>

namespace pass {

/// "2023-11-14T22:13:20Z" for `ms` since the Unix epoch, whatever the machine's time zone.
std::string isoUtc(std::int64_t ms);

}  // namespace pass
