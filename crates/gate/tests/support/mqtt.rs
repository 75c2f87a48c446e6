//! Hand-built MQTT packets.

/// Frames `body` behind a fixed-header byte.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

pub fn string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// An MQTT 5 CONNECT with a clean start and no properties.
pub fn connect_v5(client_id: &str) -> Vec<u8> {
    let mut body = string("MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 30, 0]);
    body.extend(string(client_id));
    frame(0x10, &body)
}

/// An MQTT 5 QoS 0 PUBLISH with a Topic Alias property.
pub fn publish_v5_alias(topic: &str, alias: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(&[3, 0x23]);
    body.extend_from_slice(&alias.to_be_bytes());
    body.extend_from_slice(payload);
    frame(0x30, &body)
}

/// An MQTT 5 QoS 0 PUBLISH without properties.
pub fn publish_v5(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.push(0);
    body.extend_from_slice(payload);
    frame(0x30, &body)
}
