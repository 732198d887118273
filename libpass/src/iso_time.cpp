#include "pass/iso_time.hpp"

#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace pass {

std::string isoUtc(std::int64_t ms) {
  // fmt::gmtime, not a system_clock time point: fmt 9 formats those in local time.
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(static_cast<std::time_t>(ms / 1000)));
}

}  // namespace pass
