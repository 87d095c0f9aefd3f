//! Tests of the input parsers (sysfs writes and module parameters).

use mace_core::parse::{
    check_pow2, check_range, parse_dev_list, parse_switch, parse_tap_end, parse_u32, DevSpec,
    ParseError, TapEnd, MAX_OUTER_DEVS,
};

#[test]
fn tap_end_accepts_exactly_read_and_stamp() {
    assert_eq!(parse_tap_end(b"read"), Ok(TapEnd::Read));
    assert_eq!(parse_tap_end(b"read\n"), Ok(TapEnd::Read));
    assert_eq!(parse_tap_end(b"stamp"), Ok(TapEnd::Stamp));
    assert_eq!(parse_tap_end(b"stamp\n"), Ok(TapEnd::Stamp));
    for end in [TapEnd::Read, TapEnd::Stamp] {
        assert_eq!(
            parse_tap_end(end.name().as_bytes()),
            Ok(end),
            "a shown value reads back"
        );
    }
    for bad in [
        &b""[..],
        b"\n",
        b"Read",
        b"STAMP",
        b" read",
        b"read ",
        b"read\n\n",
        b"stamp\r\n",
        b"1",
        b"tap",
        b"reads",
        b"stam",
        b"read\0",
    ] {
        assert_eq!(parse_tap_end(bad), Err(ParseError::NotTapEnd), "{bad:?}");
    }
    let msg = ParseError::NotTapEnd.to_string();
    assert!(
        msg.contains("\"read\"") && msg.contains("\"stamp\""),
        "{msg}"
    );
}

#[test]
fn switch_accepts_exactly_0_and_1() {
    assert_eq!(parse_switch(b"1"), Ok(true));
    assert_eq!(parse_switch(b"1\n"), Ok(true));
    assert_eq!(parse_switch(b"0"), Ok(false));
    assert_eq!(parse_switch(b"0\n"), Ok(false));
    for bad in [
        &b""[..],
        b"\n",
        b"2",
        b"10",
        b"01",
        b"1\n\n",
        b" 1",
        b"1 ",
        b"on",
        b"yes",
        b"-1",
        b"1\0",
        b"\x001",
        b"true",
        b"1\r\n",
    ] {
        assert_eq!(parse_switch(bad), Err(ParseError::NotSwitch), "{bad:?}");
    }
}

#[test]
fn numbers() {
    assert_eq!(parse_u32(b"0"), Ok(0));
    assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
    assert_eq!(parse_u32(b"4294967296"), Err(ParseError::OutOfRange));
    assert_eq!(parse_u32(b"99999999999"), Err(ParseError::NotNumber));
    for bad in [&b""[..], b"+1", b"-1", b"1 ", b"0x10", b"1e3"] {
        assert_eq!(parse_u32(bad), Err(ParseError::NotNumber), "{bad:?}");
    }
    assert_eq!(check_pow2(4096, 16, 65536), Ok(4096));
    for bad in [0, 8, 100, 131072, 3] {
        assert_eq!(
            check_pow2(bad, 16, 65536),
            Err(ParseError::OutOfRange),
            "{bad}"
        );
    }
    assert_eq!(check_range(1, 1, 60000), Ok(1));
    assert_eq!(check_range(0, 1, 60000), Err(ParseError::OutOfRange));
    assert_eq!(check_range(60001, 1, 60000), Err(ParseError::OutOfRange));
}

fn names(input: &str) -> Result<String, ParseError> {
    parse_dev_list(input.as_bytes()).map(|l| l.to_string())
}

#[test]
fn device_lists() {
    assert_eq!(names(""), Ok(String::new()));
    assert_eq!(names("\n"), Ok(String::new()));
    assert_eq!(names("eth0"), Ok("eth0".into()));
    assert_eq!(names("eth0,3\n"), Ok("eth0,3".into()));
    assert_eq!(
        names("enp0s31f6,veth-a.1,br_0"),
        Ok("enp0s31f6,veth-a.1,br_0".into())
    );
    assert_eq!(names("123456789012345"), Err(ParseError::BadIndex));
    assert_eq!(names("abcdefghijklmno"), Ok("abcdefghijklmno".into()));
    let list = parse_dev_list(b"7,lo").unwrap();
    assert_eq!(list.as_slice()[0], DevSpec::Index(7));
    assert_eq!(list.as_slice()[1].name(), Some(&b"lo"[..]));
}

#[test]
fn device_list_errors() {
    assert_eq!(names("eth0,,eth1"), Err(ParseError::EmptyDevice));
    assert_eq!(names(","), Err(ParseError::EmptyDevice));
    assert_eq!(names("eth0,"), Err(ParseError::EmptyDevice));
    assert_eq!(names("abcdefghijklmnop"), Err(ParseError::NameTooLong));
    assert_eq!(names("0"), Err(ParseError::BadIndex));
    assert_eq!(names("2147483648"), Err(ParseError::BadIndex));
    assert_eq!(names("4294967296"), Err(ParseError::BadIndex));
    assert_eq!(names("2147483647"), Ok("2147483647".into()));
    for bad in [
        "a/b", "a:b", "a b", ".", "..", "eth0 ", "\teth0", "é", "a\u{7f}",
    ] {
        assert_eq!(names(bad), Err(ParseError::BadName), "{bad:?}");
    }
    assert_eq!(names("eth0,eth0"), Err(ParseError::Duplicate));
    assert_eq!(names("3,3"), Err(ParseError::Duplicate));
    let max: Vec<String> = (1..=MAX_OUTER_DEVS).map(|i| i.to_string()).collect();
    assert!(names(&max.join(",")).is_ok());
    let over: Vec<String> = (1..=MAX_OUTER_DEVS + 1).map(|i| i.to_string()).collect();
    assert_eq!(names(&over.join(",")), Err(ParseError::TooManyDevices));
}

#[test]
fn every_error_has_a_message() {
    for e in [
        ParseError::NotSwitch,
        ParseError::EmptyDevice,
        ParseError::NameTooLong,
        ParseError::BadName,
        ParseError::BadIndex,
        ParseError::TooManyDevices,
        ParseError::Duplicate,
        ParseError::NotNumber,
        ParseError::OutOfRange,
    ] {
        assert!(e.to_string().len() > 10, "{e:?}");
    }
}

/// Arbitrary bytes never panic the parsers, and whatever a list parser
/// accepts prints back as input it accepts again identically.
#[test]
fn arbitrary_input_never_panics_and_round_trips() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"0123456789,:/.\n eth";
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 24) as usize;
        let mut s = Vec::with_capacity(len);
        let mut x = state;
        for _ in 0..len {
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            x = x.rotate_right(5).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let _ = parse_switch(&s);
        let _ = parse_u32(&s);
        if let Ok(list) = parse_dev_list(&s) {
            let again = parse_dev_list(list.to_string().as_bytes()).expect("reparse");
            assert_eq!(again, list);
        }
    }
}

#[test]
fn a_device_given_by_ifindex_can_be_dropped_from_a_list() {
    let list = parse_dev_list(b"eth0,3,7").unwrap();
    let (kept, found) = list.without_index(3);
    assert!(found);
    assert_eq!(kept.to_string(), "eth0,7");
    // Names are kept; an absent index changes nothing.
    let (same, found) = kept.without_index(9);
    assert!(!found);
    assert_eq!(same, kept);
    let (only_name, found) = parse_dev_list(b"eth0").unwrap().without_index(0);
    assert!(!found);
    assert_eq!(only_name.to_string(), "eth0");
    let (empty, found) = parse_dev_list(b"7").unwrap().without_index(7);
    assert!(found && empty.is_empty());
}
