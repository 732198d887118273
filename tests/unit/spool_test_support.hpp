#pragma once
// Helpers of the spool tests (test_spool.cpp, test_spool_crash.cpp): real sealed envelopes.

#include <cstddef>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>

#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "test_support.hpp"

namespace pass::test {

using pass::EnvelopeKind;

struct Keys {
  pass::X25519Key home = pass::X25519Key::generate();
  pass::Ed25519Key agent = pass::Ed25519Key::generate();
  pass::AgentId agentId = pass::randomUuid();
};

inline const Keys& keys() {
  static const Keys k;
  return k;
}

/// A real sealed envelope whose payload is `payloadSize` bytes of JSON.
inline pass::Bytes sealed(std::uint64_t seq, std::size_t payloadSize = 100) {
  pass::EnvelopeHeader header;
  header.agentId = keys().agentId;
  header.seq = seq;
  header.createdMs = 1700000000000 + seq;
  header.keyId = pass::hpkeKeyId(keys().home);
  std::string payload = "{\"pad\":\"" + std::string(payloadSize, 'x') + "\"}";
  auto env = pass::sealEnvelope(header, payload, keys().home, keys().agent);
  REQUIRE_MESSAGE(env.has_value(), errorText(env));
  return *env;
}

// Compared as names: doctest stringifies with an unqualified toString(), and ADL would pick
// pass::toString(EnvelopeKind), which returns a string_view doctest cannot concatenate.
inline std::string kindName(EnvelopeKind kind) { return std::string(pass::toString(kind)); }

}  // namespace pass::test
