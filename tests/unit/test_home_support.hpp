#pragma once
// Shared helpers of the pass-home unit tests (tests/unit/test_home_*.cpp).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "pass/home/store.hpp"
#include "test_support.hpp"

namespace pass::home::test {

using pass::test::TempDir;

inline std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::filesystem::perms permissionsOf(const std::filesystem::path& p) {
  return std::filesystem::status(p).permissions() & std::filesystem::perms::all;
}

inline NewAgent sampleAgent(const std::string& id) {
  return NewAgent{.id = id,
                  .customer = "Acme",
                  .site = "Berlin",
                  .name = "vsp-1",
                  .signKey = Ed25519Key::generate().rawPublic(),
                  .certSerial = "0abc",
                  .enrolledMs = 1'700'000'000'000};
}

inline EnvelopeRecord sampleRecord(const std::string& agent, std::uint64_t seq,
                                   std::string type = "report", std::size_t events = 2) {
  EnvelopeRecord r;
  r.agentId = agent;
  r.seq = seq;
  r.createdMs = 1'700'000'000'000 + static_cast<std::int64_t>(seq);
  r.receivedMs = r.createdMs + 5;
  r.type = std::move(type);
  r.size = 200;
  r.payload = fmt::format(R"({{"schema":1,"type":"{}","seq":{}}})", r.type, seq);
  for (std::size_t i = 0; i < events; ++i) {
    r.events.push_back(EventRecord{.family = std::nullopt,
                                   .array = "410123",
                                   .id = std::nullopt,
                                   .code = fmt::format("30708{}", i),
                                   .severity = "acute",
                                   .occurredMs = r.createdMs,
                                   .payload = R"({"array":"410123"})"});
  }
  return r;
}

}  // namespace pass::home::test
