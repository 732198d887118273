// libFuzzer harness for the home's payload reader, parsePayload (the SAX reader of
// home/src/ingest/ingest.cpp that cuts each event out of the decrypted text). Built and run by
// scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the clang 16 note). ingest.cpp also holds the
// agent directory, so it links the store.
// sources: home/src/ingest/ingest.cpp home/src/store/*.cpp home/src/store/sqlite/*.cpp
// sources: home/src/store/postgres/*.cpp home/src/tickets/policy.cpp
// sources: home/src/tickets/ticket_engine.cpp home/src/tickets/watchdog.cpp
// sources: build/dev/home/embedded_sql/*.cpp
// sources: home/src/keys/pki.cpp home/src/keys/hpke_keys.cpp home/src/server/log.cpp
// sources: libpass/src/x509_util.cpp
// sources: libpass/src/envelope.cpp libpass/src/hpke.cpp libpass/src/crypto.cpp
// sources: libpass/src/bytes.cpp libpass/src/platform/posix/fs.cpp
// flags: -Ihome/include -Ihome/src -I/usr/include/postgresql -lsqlite3 -lpq -lssl -lcrypto
//
// The input is a decrypted payload. Properties, checked against nlohmann's DOM parse of the
// same text: what the reader accepts is a JSON object with "schema": 1 and a known "type"; the
// type, heartbeat numbers, array model and name are those of the DOM (a repeated key counts
// once, its last value); and every event of a report is the exact text of the DOM's event.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "pass/home/ingest.hpp"
#include "support.hpp"

namespace {

using Json = nlohmann::json;

/// The DOM's value for an optional string the reader keeps: strings as they are, integers as
/// their decimal text; nullopt for null or absent.
std::optional<std::string> domText(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return it->dump();
  return "?";  // a float keeps its source text, which the DOM does not; not compared
}

void checkOptional(const std::optional<std::string>& read, const std::optional<std::string>& dom) {
  if (dom && *dom == "?") return;
  check(read == dom);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto payload = pass::home::parsePayload(text);
  if (!payload) {
    check(!payload.error().empty());
    return 0;
  }
  // Accepted: the text is one JSON object, so the DOM parse cannot throw.
  Json dom = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(dom.is_object());
  check(dom.at("schema") == 1);
  check(dom.at("type").is_string() && dom.at("type").get<std::string>() == payload->type);
  if (payload->type == "heartbeat") {
    if (payload->nextDueMs) check(dom.at("next_due_ms") == *payload->nextDueMs);
    if (payload->intervalMs) check(dom.at("interval_s").is_number_unsigned());
  }
  if (payload->type != "report") {
    check(payload->events.empty());
    return 0;
  }
  const Json& events = dom.at("events");
  check(events.is_array() && events.size() == payload->events.size());
  // The array's model and name are kept when they are strings (an earlier "array" member may
  // have given one the DOM's last does not have).
  if (auto array = dom.find("array"); array != dom.end() && array->is_object()) {
    for (auto [key, read] :
         {std::pair{"model", &payload->arrayModel}, std::pair{"name", &payload->arrayName}}) {
      if (auto it = array->find(key); it != array->end() && it->is_string()) {
        check(*read == it->get<std::string>());
      }
    }
  }
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = payload->events[i];
    const Json& d = events[i];
    check(d.is_object());
    // The stored event text is a slice of the payload that parses to the DOM's event.
    check(text.find(e.payload) != std::string_view::npos);
    check(Json::parse(e.payload, nullptr, false) == d);
    checkOptional(e.code, domText(d, "code"));
    checkOptional(e.severity, domText(d, "severity"));
    checkOptional(e.id, domText(d, "id"));
    checkOptional(e.text, domText(d, "text"));
    if (e.occurredMs) check(d.at("occurred_ms") == *e.occurredMs);
  }
  return 0;
}
