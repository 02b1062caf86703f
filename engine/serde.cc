#include "engine/serde.h"

#include <bit>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "engine/json_document.h"

namespace tributary {
namespace {

template <typename U>
void PutBigEndian(U bits, std::string& out) {
  out.resize(sizeof(U));
  for (size_t i = 0; i < sizeof(U); ++i) {
    out[i] = static_cast<char>(bits >> (8 * (sizeof(U) - 1 - i)));
  }
}

template <typename U>
absl::StatusOr<U> GetBigEndian(std::string_view serde_name,
                               std::string_view bytes) {
  if (bytes.size() != sizeof(U)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(serde_name), " serde: expected ", sizeof(U),
                     " bytes, got ", bytes.size()));
  }
  U bits = 0;
  for (char byte : bytes) {
    bits = static_cast<U>((bits << 8) | static_cast<unsigned char>(byte));
  }
  return bits;
}

Serde<std::string> Identity(std::string name) {
  Serde<std::string> serde;
  serde.name = std::move(name);
  serde.serialize = [](const std::string& value, std::string& out) {
    out.assign(value);
  };
  serde.deserialize =
      [](std::string_view bytes) -> absl::StatusOr<std::string> {
    return std::string(bytes);
  };
  return serde;
}

}  // namespace

Serde<std::string> Serdes::String() { return Identity("String"); }

Serde<std::string> Serdes::Bytes() { return Identity("Bytes"); }

Serde<int64_t> Serdes::Int64() {
  Serde<int64_t> serde;
  serde.name = "Int64";
  serde.serialize = [](const int64_t& value, std::string& out) {
    PutBigEndian(static_cast<uint64_t>(value), out);
  };
  serde.deserialize = [](std::string_view bytes) -> absl::StatusOr<int64_t> {
    absl::StatusOr<uint64_t> bits = GetBigEndian<uint64_t>("Int64", bytes);
    if (!bits.ok()) return bits.status();
    return static_cast<int64_t>(*bits);
  };
  return serde;
}

Serde<int32_t> Serdes::Int32() {
  Serde<int32_t> serde;
  serde.name = "Int32";
  serde.serialize = [](const int32_t& value, std::string& out) {
    PutBigEndian(static_cast<uint32_t>(value), out);
  };
  serde.deserialize = [](std::string_view bytes) -> absl::StatusOr<int32_t> {
    absl::StatusOr<uint32_t> bits = GetBigEndian<uint32_t>("Int32", bytes);
    if (!bits.ok()) return bits.status();
    return static_cast<int32_t>(*bits);
  };
  return serde;
}

Serde<double> Serdes::Double() {
  Serde<double> serde;
  serde.name = "Double";
  serde.serialize = [](const double& value, std::string& out) {
    PutBigEndian(std::bit_cast<uint64_t>(value), out);
  };
  serde.deserialize = [](std::string_view bytes) -> absl::StatusOr<double> {
    absl::StatusOr<uint64_t> bits = GetBigEndian<uint64_t>("Double", bytes);
    if (!bits.ok()) return bits.status();
    return std::bit_cast<double>(*bits);
  };
  return serde;
}

Serde<JsonDocument> Serdes::Json() {
  Serde<JsonDocument> serde;
  serde.name = "Json";
  serde.serialize = [](const JsonDocument& value, std::string& out) {
    out.assign(value.text());
  };
  serde.deserialize =
      [](std::string_view bytes) -> absl::StatusOr<JsonDocument> {
    absl::StatusOr<JsonDocument> doc = JsonDocument::Parse(bytes);
    if (!doc.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Json serde: ", doc.status().message()));
    }
    return doc;
  };
  return serde;
}

}  // namespace tributary
