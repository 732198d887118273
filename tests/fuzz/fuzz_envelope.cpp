// libFuzzer harness for the envelope framing the home reads before anything else:
// parseEnvelopeHeader and openEnvelope, on whatever bytes a client POSTs to /v1/envelopes.
// Built and run by scripts/fuzz.sh (see fuzz_hitachi_svp.cpp for the clang 16 note).
// sources: libpass/src/envelope.cpp libpass/src/hpke.cpp libpass/src/crypto.cpp
// sources: libpass/src/bytes.cpp libpass/src/platform/posix/fs.cpp
// flags: -lssl -lcrypto
//
// The input is an envelope. Properties: a header is returned only for exactly framed v1 bytes,
// every refusal carries one of the documented codes, and openEnvelope, whose keys did not sign
// the input, refuses it with the framing error or "bad_signature" and never decrypts it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "pass/envelope.hpp"
#include "support.hpp"

namespace {

using pass::ByteView;

bool framingCode(std::string_view code) {
  for (std::string_view known :
       {"short", "bad_magic", "bad_version", "bad_suite", "bad_flags", "length_mismatch"}) {
    if (code == known) return true;
  }
  return false;
}

const pass::EnvelopeKeys& keys() {
  static const pass::EnvelopeKeys kKeys = [] {
    pass::EnvelopeKeys k;
    // The agent's key is fresh: no input can carry its signature.
    k.agentKey = [agent = pass::Ed25519Key::generate()](
                     const pass::AgentId&) -> pass::Result<pass::Ed25519Key> { return agent; };
    k.homeKey = [](const pass::KeyId&) -> pass::Result<pass::X25519Key> {
      std::array<std::uint8_t, 32> raw{};
      raw.fill(0x42);
      return pass::X25519Key::fromRawPrivate(raw);
    };
    return k;
  }();
  return kKeys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView envelope(data, size);
  auto header = pass::parseEnvelopeHeader(envelope);
  if (header) {
    check(size >= pass::kEnvelopeFixedSize + 16);
    check(data[0] == 'P' && data[1] == 'A' && data[2] == 'S' && data[3] == 'S');
    check(data[4] == pass::kEnvelopeVersion && data[5] == pass::kEnvelopeSuite);
    std::uint32_t ctLen = pass::getU32(data + pass::kEnvelopeHeaderSize + 32);
    check(std::uint64_t{pass::kEnvelopeFixedSize} + ctLen == size);
    check(pass::parseUuid(pass::formatUuid(header->agentId)) == header->agentId);
  } else {
    check(framingCode(header.error().code));
    check(!header.error().message.empty());
  }
  auto opened = pass::openEnvelope(envelope, keys());
  check(!opened);
  check(header ? opened.error().code == "bad_signature"
               : opened.error().code == header.error().code);

  // The agent id of a client certificate is read with parseUuid too.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto id = pass::parseUuid(text)) {
    std::string back = pass::formatUuid(*id);
    for (std::size_t i = 0; i < back.size(); ++i) {
      check(back[i] == (text[i] >= 'A' && text[i] <= 'F' ? text[i] - 'A' + 'a' : text[i]));
    }
  }
  return 0;
}
