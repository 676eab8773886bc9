//! A tiny writer of MaxMind DB files (the `.mmdb` format of GeoIP2 and
//! GeoLite2), for tests only: the `maxminddb` crate reads, nothing here
//! writes, and MaxMind's databases cannot be downloaded by a test.
//!
//! The format (<https://maxmind.github.io/MaxMind-DB/>): a binary search
//! tree over the address bits (two 24-bit records per node: a node number,
//! "not found", or a pointer into the data section), sixteen zero bytes,
//! the data section (typed values), then `\xAB\xCD\xEFMaxMind.com` and the
//! metadata map. This writes IPv4 databases of `{country: {iso_code}}`
//! records, the shape of GeoIP2 Country.

use std::net::Ipv4Addr;

const RECORD_BITS: u32 = 24;

/// A record of the search tree while it is being built.
#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(u32),
    /// An offset in the data section.
    Data(u32),
}

/// A GeoIP2-Country-shaped database mapping each IPv4 network
/// (`"203.0.113.0/24"`; networks must not nest) to an ISO country code.
pub fn country_database(networks: &[(&str, &str)]) -> Vec<u8> {
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    let mut data = Vec::new();
    for (network, iso_code) in networks {
        let (address, prefix) = network.split_once('/').expect("a network like 10.0.0.0/8");
        let address = u32::from(address.parse::<Ipv4Addr>().expect("an IPv4 network"));
        let prefix: u32 = prefix.parse().expect("a prefix length");
        let offset = data.len() as u32;
        encode_map(&mut data, 1);
        encode_string(&mut data, "country");
        encode_map(&mut data, 1);
        encode_string(&mut data, "iso_code");
        encode_string(&mut data, iso_code);
        let mut node = 0usize;
        for depth in 0..prefix {
            let bit = ((address >> (31 - depth)) & 1) as usize;
            if depth == prefix - 1 {
                nodes[node][bit] = Record::Data(offset);
                break;
            }
            node = match nodes[node][bit] {
                Record::Node(next) => next as usize,
                _ => {
                    nodes.push([Record::Empty; 2]);
                    let next = nodes.len() - 1;
                    nodes[node][bit] = Record::Node(next as u32);
                    next
                }
            };
        }
    }
    let node_count = nodes.len() as u32;
    let mut file = Vec::new();
    for node in &nodes {
        for record in node {
            let value = match record {
                Record::Empty => node_count,
                Record::Node(next) => *next,
                Record::Data(offset) => node_count + 16 + offset,
            };
            assert!(value < 1 << RECORD_BITS);
            file.extend_from_slice(&value.to_be_bytes()[1..]);
        }
    }
    file.extend_from_slice(&[0; 16]);
    file.extend_from_slice(&data);
    file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    encode_map(&mut file, 9);
    encode_string(&mut file, "binary_format_major_version");
    encode_uint(&mut file, 5, 2);
    encode_string(&mut file, "binary_format_minor_version");
    encode_uint(&mut file, 5, 0);
    encode_string(&mut file, "build_epoch");
    encode_uint(&mut file, 9, 1_700_000_000);
    encode_string(&mut file, "database_type");
    encode_string(&mut file, "GeoIP2-Country");
    encode_string(&mut file, "description");
    encode_map(&mut file, 1);
    encode_string(&mut file, "en");
    encode_string(&mut file, "test countries");
    encode_string(&mut file, "ip_version");
    encode_uint(&mut file, 5, 4);
    encode_string(&mut file, "languages");
    encode_control(&mut file, 11, 1);
    encode_string(&mut file, "en");
    encode_string(&mut file, "node_count");
    encode_uint(&mut file, 6, u64::from(node_count));
    encode_string(&mut file, "record_size");
    encode_uint(&mut file, 5, u64::from(RECORD_BITS));
    file
}

/// A control byte: the type in the top three bits (extended types, 8 and
/// up, in a second byte) and the size in the low five.
fn encode_control(out: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29, "sizes of 29 and more are not written here");
    if kind < 8 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn encode_string(out: &mut Vec<u8>, text: &str) {
    encode_control(out, 2, text.len());
    out.extend_from_slice(text.as_bytes());
}

fn encode_map(out: &mut Vec<u8>, pairs: usize) {
    encode_control(out, 7, pairs);
}

/// An unsigned integer of `kind` (5: uint16, 6: uint32, 9: uint64) in as
/// few big-endian bytes as it needs.
fn encode_uint(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    encode_control(out, kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
}
