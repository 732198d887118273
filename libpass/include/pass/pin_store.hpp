#pragma once
/// The agent's pins: per array, state/pins/<family>-<serial>.json holds the identities the
/// array proved on first contact (docs/security.md, "Arrays: trust on first use").

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pass/collector.hpp"
#include "pass/result.hpp"

namespace pass {

class FilePinStore final : public PinStore {
 public:
  struct Pin {
    std::string value;
    std::uint64_t pinnedMs = 0;
  };

  /// Reads `file` if it exists. A damaged file is an error naming it, never an empty store:
  /// an empty store would trust whatever key the array shows next.
  static Result<FilePinStore> open(std::filesystem::path file,
                                   std::function<std::uint64_t()> clock);

  std::optional<std::string> find(std::string_view name) const override;
  Status remember(std::string_view name, std::string_view value) override;
  const std::map<std::string, Pin, std::less<>>& pins() const { return pins_; }

 private:
  FilePinStore(std::filesystem::path file, std::function<std::uint64_t()> clock)
      : file_(std::move(file)), clock_(std::move(clock)) {}
  std::filesystem::path file_;
  std::function<std::uint64_t()> clock_;
  std::map<std::string, Pin, std::less<>> pins_;
};

/// The pin file of one array in a state directory.
std::filesystem::path pinFile(const std::filesystem::path& stateDir, const ArrayConfig& array);

}  // namespace pass
