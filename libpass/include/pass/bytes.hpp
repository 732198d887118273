#pragma once
/// Byte buffers, hex and big-endian helpers shared by the crypto and wire code.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pass {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

/// Lower-case hex of the bytes.
std::string toHex(ByteView bytes);
/// Parses hex (upper or lower case, no separators); nullopt on odd length or a non-hex digit.
std::optional<Bytes> fromHex(std::string_view hex);

inline ByteView asBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view asString(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

void putU16(Bytes& out, std::uint16_t v);
void putU32(Bytes& out, std::uint32_t v);
void putU64(Bytes& out, std::uint64_t v);
std::uint16_t getU16(const std::uint8_t* p);
std::uint32_t getU32(const std::uint8_t* p);
std::uint64_t getU64(const std::uint8_t* p);

/// Concatenates byte views.
Bytes concat(std::initializer_list<ByteView> parts);

}  // namespace pass
