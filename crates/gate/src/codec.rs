//! MQTT packet reading (3.1.1 and 5.0) and the parsing the ACL needs.
//!
//! [`PacketReader`] reads one client packet at a time: the fixed header byte, the remaining
//! length (a variable byte integer of at most four bytes, minimally encoded), then the body.
//! The remaining length is checked against the limit *before* the body is allocated, and the
//! buffer shrinks back after a large packet, so an idle connection holds almost nothing.
//! [`RawPacket::parse`] reads just enough of a packet for the ACL — CONNECT fields, PUBLISH
//! topic and properties, SUBSCRIBE filters — and checks the framing around them; the exact
//! bytes are then forwarded unchanged. Everything here is total: any input yields a value or a
//! [`DecodeError`], never a panic.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

/// Bytes read ahead from the client; small, since rustls already buffers a record.
const READ_AHEAD_BYTES: usize = 1024;
/// Packet buffer capacity kept between packets; a larger one is released after use.
const RETAINED_BUFFER_BYTES: usize = 8 * 1024;

/// The MQTT protocol version a client announced in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5): properties follow the variable headers.
    V5,
}

/// An MQTT control packet type (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Type 0, reserved.
    Reserved,
    /// CONNECT.
    Connect,
    /// CONNACK.
    ConnAck,
    /// PUBLISH.
    Publish,
    /// PUBACK.
    PubAck,
    /// PUBREC.
    PubRec,
    /// PUBREL.
    PubRel,
    /// PUBCOMP.
    PubComp,
    /// SUBSCRIBE.
    Subscribe,
    /// SUBACK.
    SubAck,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// UNSUBACK.
    UnsubAck,
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect,
    /// AUTH (MQTT 5 enhanced authentication).
    Auth,
}

impl PacketType {
    /// The type of a packet from its first byte.
    pub fn from_first_byte(byte: u8) -> Self {
        use PacketType::*;
        [
            Reserved,
            Connect,
            ConnAck,
            Publish,
            PubAck,
            PubRec,
            PubRel,
            PubComp,
            Subscribe,
            SubAck,
            Unsubscribe,
            UnsubAck,
            PingReq,
            PingResp,
            Disconnect,
            Auth,
        ][usize::from(byte >> 4)]
    }

    /// The packet's name in the MQTT specification.
    pub fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Reserved => "reserved packet type 0",
            Connect => "CONNECT",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            PingReq => "PINGREQ",
            PingResp => "PINGRESP",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        }
    }
}

/// Why a packet could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The remaining length exceeds the gate's limit (nothing was allocated).
    #[error("packet of {length} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// The announced remaining length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A variable byte integer longer than four bytes or not minimally encoded.
    #[error("malformed variable byte integer")]
    BadVarint,
    /// The CONNECT names a protocol other than MQTT 3.1.1 or 5.0.
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol {
        /// The protocol name (truncated).
        name: String,
        /// The protocol level.
        level: u8,
    },
    /// A field is missing, too long, or breaks a rule of the specification.
    #[error("malformed {packet}: {reason}")]
    Malformed {
        /// The packet type name.
        packet: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why [`PacketReader::next_packet`] returned no packet.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a valid MQTT frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The connection ended in the middle of a packet.
    #[error("connection closed in the middle of a packet")]
    Truncated,
    /// The connection failed.
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated
        } else {
            ReadError::Io(error)
        }
    }
}

/// Decodes a variable byte integer at the start of `bytes`: `Ok(None)` if more bytes are
/// needed, else the value and the number of bytes it took.
pub fn decode_varint(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate().take(4) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Minimal encoding: a last byte of zero is only valid as the only byte.
            if byte == 0 && i > 0 {
                return Err(DecodeError::BadVarint);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::BadVarint)
    } else {
        Ok(None)
    }
}

/// Reads client packets one at a time.
#[derive(Debug)]
pub struct PacketReader<R> {
    inner: BufReader<R>,
    buffer: Vec<u8>,
    max_packet_bytes: usize,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    /// Reads from `inner`, refusing packets whose remaining length exceeds
    /// `max_packet_bytes`.
    pub fn new(inner: R, max_packet_bytes: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_AHEAD_BYTES, inner),
            buffer: Vec::new(),
            max_packet_bytes,
        }
    }

    /// Changes the packet size limit for the packets that follow.
    pub fn set_max_packet_bytes(&mut self, max_packet_bytes: usize) {
        self.max_packet_bytes = max_packet_bytes;
    }

    /// The next packet, or `None` when the peer closed the connection between packets.
    ///
    /// Not cancel-safe: a read cancelled mid-packet loses its place in the stream (the gate
    /// closes the connection whenever it stops reading, so this never matters there).
    pub async fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError> {
        if self.buffer.capacity() > RETAINED_BUFFER_BYTES {
            self.buffer = Vec::new();
        }
        self.buffer.clear();
        let first = match self.inner.read_u8().await {
            Ok(byte) => byte,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(ReadError::Io(error)),
        };
        let mut header = [first, 0, 0, 0, 0];
        let mut header_len = 1;
        let remaining = loop {
            header[header_len] = self.inner.read_u8().await?;
            header_len += 1;
            if let Some((value, _)) = decode_varint(&header[1..header_len])? {
                break value;
            }
        };
        if remaining > self.max_packet_bytes {
            return Err(DecodeError::Oversize {
                length: remaining,
                max: self.max_packet_bytes,
            }
            .into());
        }
        let total = header_len + remaining;
        self.buffer.reserve_exact(total);
        self.buffer.extend_from_slice(&header[..header_len]);
        self.buffer.resize(total, 0);
        self.inner
            .read_exact(&mut self.buffer[header_len..])
            .await?;
        Ok(Some(RawPacket {
            bytes: &self.buffer,
            header_len,
        }))
    }
}

/// One framed packet, exactly as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    bytes: &'a [u8],
    header_len: usize,
}

impl<'a> RawPacket<'a> {
    /// Frames a complete packet held in `bytes` (fixed header, then exactly the remaining
    /// length); for tests and tools that hold packets in memory.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let malformed = |reason| DecodeError::Malformed {
            packet: "packet",
            reason,
        };
        let rest = bytes.get(1..).ok_or(malformed("empty"))?;
        let (remaining, len) = decode_varint(rest)?.ok_or(malformed("truncated fixed header"))?;
        if rest.len() - len != remaining {
            return Err(malformed("remaining length does not match the bytes"));
        }
        Ok(Self {
            bytes,
            header_len: 1 + len,
        })
    }

    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        PacketType::from_first_byte(self.bytes[0])
    }

    /// The whole packet, fixed header included: what is forwarded.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes after the fixed header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }

    /// Parses a CONNECT packet (which announces its own protocol version).
    pub fn parse_connect(&self) -> Result<Connect<'a>, DecodeError> {
        self.check_flags(0)?;
        Connect::parse(self.body())
    }

    /// Parses any packet sent after CONNECT, for a client of `version`.
    pub fn parse(&self, version: ProtocolVersion) -> Result<Packet<'a>, DecodeError> {
        let kind = self.packet_type();
        let flags = self.bytes[0] & 0x0f;
        Ok(match kind {
            PacketType::Connect => Packet::Connect(self.parse_connect()?),
            PacketType::Publish => Packet::Publish(Publish::parse(flags, self.body(), version)?),
            PacketType::Subscribe => {
                self.check_flags(0b0010)?;
                Packet::Subscribe(Subscribe::parse(self.body(), version)?)
            }
            PacketType::PubRel | PacketType::Unsubscribe => {
                self.check_flags(0b0010)?;
                Packet::Passthrough(kind)
            }
            PacketType::PubAck | PacketType::PubRec | PacketType::PubComp => {
                self.check_flags(0)?;
                Packet::Passthrough(kind)
            }
            PacketType::PingReq | PacketType::Disconnect => {
                self.check_flags(0)?;
                Packet::Passthrough(kind)
            }
            PacketType::Reserved
            | PacketType::ConnAck
            | PacketType::SubAck
            | PacketType::UnsubAck
            | PacketType::PingResp
            | PacketType::Auth => Packet::NotFromClient(kind),
        })
    }

    fn check_flags(&self, expected: u8) -> Result<(), DecodeError> {
        if self.bytes[0] & 0x0f == expected {
            Ok(())
        } else {
            Err(DecodeError::Malformed {
                packet: self.packet_type().name(),
                reason: "reserved fixed-header flags",
            })
        }
    }
}

/// What the ACL needs to know of a client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNECT.
    Connect(Connect<'a>),
    /// PUBLISH.
    Publish(Publish<'a>),
    /// SUBSCRIBE.
    Subscribe(Subscribe<'a>),
    /// A packet the gate forwards without looking inside: PUBACK, PUBREC, PUBREL, PUBCOMP,
    /// UNSUBSCRIBE, PINGREQ, DISCONNECT.
    Passthrough(PacketType),
    /// A packet a client must not send to the gate: server-to-client types, AUTH, reserved.
    NotFromClient(PacketType),
}

/// The CONNECT fields the ACL checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The protocol version.
    pub version: ProtocolVersion,
    /// The client identifier.
    pub client_id: &'a str,
    /// The keep-alive in seconds (0: none).
    pub keep_alive: u16,
    /// The will topic, when the client set a will message.
    pub will_topic: Option<&'a str>,
    /// Whether a user name is present.
    pub has_username: bool,
    /// Whether a password is present.
    pub has_password: bool,
    /// Whether MQTT 5 enhanced authentication was requested (an Authentication Method).
    pub enhanced_auth: bool,
    /// Where the client id's length prefix starts in the packet body.
    pub(crate) client_id_at: usize,
}

impl Connect<'_> {
    /// The CONNECT packet `raw` (which this was parsed from) with its client id replaced by
    /// `client_id`; every other byte is kept.
    pub fn with_client_id(
        &self,
        raw: &RawPacket<'_>,
        client_id: &str,
    ) -> Result<Vec<u8>, DecodeError> {
        let body = raw.body();
        let too_long = DecodeError::Malformed {
            packet: "CONNECT",
            reason: "client id longer than 65535 bytes",
        };
        let id_len = u16::try_from(client_id.len()).map_err(|_| too_long.clone())?;
        let head = body.get(..self.client_id_at).ok_or(too_long.clone())?;
        let tail = body
            .get(self.client_id_at + 2 + self.client_id.len()..)
            .ok_or(too_long)?;
        let remaining = head.len() + 2 + client_id.len() + tail.len();
        let mut out = Vec::with_capacity(remaining + 5);
        out.push(raw.bytes()[0]);
        encode_varint(remaining, &mut out);
        out.extend_from_slice(head);
        out.extend_from_slice(&id_len.to_be_bytes());
        out.extend_from_slice(client_id.as_bytes());
        out.extend_from_slice(tail);
        Ok(out)
    }
}

/// Appends `value` as a variable byte integer (values over the MQTT maximum are not
/// representable and must not be passed).
fn encode_varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        // Truncation is the point: the low seven bits.
        let mut byte = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

impl<'a> Connect<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(body, "CONNECT");
        let name = cur.string()?;
        let level = cur.u8()?;
        let version = match (name, level) {
            ("MQTT", 4) => ProtocolVersion::V311,
            ("MQTT", 5) => ProtocolVersion::V5,
            _ => {
                return Err(DecodeError::UnsupportedProtocol {
                    name: name.chars().take(16).collect(),
                    level,
                })
            }
        };
        let flags = cur.u8()?;
        let will = flags & 0x04 != 0;
        let will_qos = (flags >> 3) & 0x03;
        let will_retain = flags & 0x20 != 0;
        let has_password = flags & 0x40 != 0;
        let has_username = flags & 0x80 != 0;
        if flags & 0x01 != 0 {
            return Err(cur.malformed("reserved connect flag set"));
        }
        if will_qos == 3 || (!will && (will_qos != 0 || will_retain)) {
            return Err(cur.malformed("invalid will flags"));
        }
        if version == ProtocolVersion::V311 && has_password && !has_username {
            return Err(cur.malformed("password without user name"));
        }
        let keep_alive = cur.u16()?;
        let mut enhanced_auth = false;
        if version == ProtocolVersion::V5 {
            enhanced_auth = cur.properties()?.auth_method;
        }
        let client_id_at = body.len() - cur.bytes.len();
        let client_id = cur.string()?;
        let will_topic = if will {
            if version == ProtocolVersion::V5 {
                cur.properties()?;
            }
            let topic = cur.string()?;
            cur.binary()?;
            Some(topic)
        } else {
            None
        };
        if has_username {
            cur.string()?;
        }
        if has_password {
            cur.binary()?;
        }
        cur.finish()?;
        Ok(Self {
            version,
            client_id,
            keep_alive,
            will_topic,
            has_username,
            has_password,
            enhanced_auth,
            client_id_at,
        })
    }
}

/// The PUBLISH fields the ACL checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    /// The topic name (empty when an MQTT 5 topic alias stands for it).
    pub topic: &'a str,
    /// The QoS, 0 to 2.
    pub qos: u8,
    /// The retain flag.
    pub retain: bool,
    /// The MQTT 5 Topic Alias property, if present.
    pub topic_alias: Option<u16>,
}

impl<'a> Publish<'a> {
    fn parse(flags: u8, body: &'a [u8], version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(body, "PUBLISH");
        let qos = (flags >> 1) & 0x03;
        let dup = flags & 0x08 != 0;
        if qos == 3 {
            return Err(cur.malformed("QoS 3"));
        }
        if qos == 0 && dup {
            return Err(cur.malformed("DUP set on QoS 0"));
        }
        let topic = cur.string()?;
        if qos > 0 && cur.u16()? == 0 {
            return Err(cur.malformed("packet identifier 0"));
        }
        let topic_alias = match version {
            ProtocolVersion::V5 => cur.properties()?.topic_alias,
            ProtocolVersion::V311 => None,
        };
        Ok(Self {
            topic,
            qos,
            retain: flags & 0x01 != 0,
            topic_alias,
        })
    }
}

/// The SUBSCRIBE fields the ACL checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// The topic filters, at least one.
    pub filters: Vec<&'a str>,
}

impl<'a> Subscribe<'a> {
    fn parse(body: &'a [u8], version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut cur = Cursor::new(body, "SUBSCRIBE");
        if cur.u16()? == 0 {
            return Err(cur.malformed("packet identifier 0"));
        }
        if version == ProtocolVersion::V5 {
            cur.properties()?;
        }
        let reserved = match version {
            ProtocolVersion::V311 => 0xfc,
            ProtocolVersion::V5 => 0xc0,
        };
        let mut filters = Vec::new();
        while !cur.is_empty() {
            let filter = cur.string()?;
            let options = cur.u8()?;
            if options & reserved != 0 || options & 0x03 == 3 {
                return Err(cur.malformed("invalid subscription options"));
            }
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(cur.malformed("no topic filter"));
        }
        Ok(Self { filters })
    }
}

/// The MQTT 5 properties the gate cares about.
#[derive(Debug, Default)]
struct Properties {
    topic_alias: Option<u16>,
    auth_method: bool,
}

/// Reads big-endian MQTT fields from a packet body.
struct Cursor<'a> {
    bytes: &'a [u8],
    packet: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], packet: &'static str) -> Self {
        Self { bytes, packet }
    }

    fn malformed(&self, reason: &'static str) -> DecodeError {
        DecodeError::Malformed {
            packet: self.packet,
            reason,
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes"))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.malformed("field runs past the end of the packet"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.binary()?;
        let text = std::str::from_utf8(bytes).map_err(|_| self.malformed("invalid UTF-8"))?;
        if text.contains('\0') {
            return Err(self.malformed("NUL in a string"));
        }
        Ok(text)
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
        match decode_varint(self.bytes)? {
            Some((value, len)) => {
                self.bytes = &self.bytes[len..];
                Ok(value)
            }
            None => Err(self.malformed("truncated variable byte integer")),
        }
    }

    /// Reads an MQTT 5 property list, keeping what the gate needs.
    fn properties(&mut self) -> Result<Properties, DecodeError> {
        let len = self.varint()?;
        let mut cur = Cursor::new(self.take(len)?, self.packet);
        let mut found = Properties::default();
        while !cur.is_empty() {
            match cur.varint()? {
                // Byte properties.
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => {
                    cur.u8()?;
                }
                // Two-byte integers; 0x23 is the Topic Alias.
                0x23 => {
                    let alias = cur.u16()?;
                    if found.topic_alias.replace(alias).is_some() {
                        return Err(cur.malformed("topic alias given twice"));
                    }
                }
                0x13 | 0x21 | 0x22 => {
                    cur.u16()?;
                }
                // Four-byte integers.
                0x02 | 0x11 | 0x18 | 0x27 => {
                    cur.take(4)?;
                }
                // Variable byte integer: subscription identifier.
                0x0b => {
                    cur.varint()?;
                }
                // UTF-8 strings; 0x15 is the Authentication Method.
                0x15 => {
                    cur.string()?;
                    found.auth_method = true;
                }
                0x03 | 0x08 | 0x12 | 0x1a | 0x1c | 0x1f => {
                    cur.string()?;
                }
                // Binary data.
                0x09 | 0x16 => {
                    cur.binary()?;
                }
                // User property: a string pair.
                0x26 => {
                    cur.string()?;
                    cur.string()?;
                }
                _ => return Err(cur.malformed("unknown property")),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests;
