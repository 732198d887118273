#include "pass/pin_store.hpp"

#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "platform/fs.hpp"

namespace pass {

namespace fs = std::filesystem;

fs::path pinFile(const fs::path& stateDir, const ArrayConfig& array) {
  return stateDir / "pins" / (array.key() + ".json");
}

Result<FilePinStore> FilePinStore::open(fs::path file, std::function<std::uint64_t()> clock) {
  FilePinStore store(std::move(file), std::move(clock));
  auto text = platform::readFile(store.file_);
  if (!text) {
    if (text.error().code == "not_found") return store;
    return std::unexpected(text.error());
  }
  auto damaged = [&](std::string_view why) {
    return fail("state.corrupt",
                fmt::format("{}: {}; restore it from a backup, or delete it to pin the array's "
                            "keys again on the next contact",
                            platform::displayPath(store.file_), why));
  };
  auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("pins") || !doc["pins"].is_object()) {
    return damaged("not a pin file (a JSON object with \"pins\")");
  }
  for (const auto& [name, pin] : doc["pins"].items()) {
    if (!pin.is_object() || !pin.contains("value") || !pin["value"].is_string() ||
        pin.value("value", std::string()).empty() || !pin.contains("pinned_ms") ||
        !pin["pinned_ms"].is_number_unsigned()) {
      return damaged(fmt::format("pin \"{}\" needs a value and pinned_ms", name));
    }
    store.pins_[name] = Pin{pin["value"].get<std::string>(), pin["pinned_ms"].get<std::uint64_t>()};
  }
  return store;
}

std::optional<std::string> FilePinStore::find(std::string_view name) const {
  auto it = pins_.find(name);
  if (it == pins_.end()) return std::nullopt;
  return it->second.value;
}

Status FilePinStore::remember(std::string_view name, std::string_view value) {
  pins_.insert_or_assign(std::string(name), Pin{std::string(value), clock_()});
  nlohmann::json doc;
  doc["pins"] = nlohmann::json::object();
  for (const auto& [n, pin] : pins_) {
    doc["pins"][n] = {{"value", pin.value}, {"pinned_ms", pin.pinnedMs}};
  }
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  if (ec) {
    return fail("state.io", fmt::format("cannot create {}: {}",
                                        platform::displayPath(file_.parent_path()), ec.message()));
  }
  return platform::writeFileAtomic(file_, doc.dump(2) + "\n");
}

}  // namespace pass
