//! The writer's formats, line by line.

use super::chrome::write_json;
use super::csv_rows::write_csv;
use super::digits::{micros, num};
use super::format::PID;
use crate::frame::{FrameHeader, FrameType};
use crate::trace::schema::{Flags, Kind, Name, Packed, Record, CSV_HEADER, NO_STATE};
use crate::trace::CsvRow;

fn action() -> Record {
    Record {
        ts_ns: 1_234_567,
        dur_ns: 2_500,
        client: 3,
        kind: Kind::Action,
        name: Some(Name::ReadSocket),
        frame: None,
        bytes: 42,
        state: Flags::CAN_READ.with(Flags::TLS_READY).bits() as u64,
        thread: 1,
    }
}

fn frame() -> Record {
    Record {
        ts_ns: 2_000_001,
        dur_ns: 0,
        client: 3,
        kind: Kind::FrameOut,
        name: None,
        frame: Some(FrameHeader {
            length: 12,
            kind: FrameType::DATA,
            flags: 1,
            stream: 5,
        }),
        bytes: 12,
        state: NO_STATE,
        thread: 0,
    }
}

fn csv(r: &Record) -> String {
    let mut v = Vec::new();
    write_csv(&mut v, r);
    String::from_utf8(v).unwrap()
}

#[test]
fn numbers_format_like_display() {
    for n in [0, 7, 10, 999, 1000, 123_456_789, u64::MAX] {
        let mut v = Vec::new();
        num(&mut v, n);
        assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
    }
    for (ns, text) in [
        (0, "0.000"),
        (999, "0.999"),
        (1_000, "1.000"),
        (1_234_567, "1234.567"),
        (5_005, "5.005"),
    ] {
        let mut v = Vec::new();
        micros(&mut v, ns);
        assert_eq!(String::from_utf8(v).unwrap(), text);
    }
}

#[test]
fn csv_rows_have_the_eight_columns() {
    assert_eq!(
        csv(&action()),
        "1234567,2500,3,action,read_socket,,42,r---t------\n"
    );
    assert_eq!(
        csv(&frame()),
        "2000001,0,3,frame-out,DATA,5,12,END_STREAM\n"
    );
    let no_state = Record {
        state: NO_STATE,
        ..action()
    };
    assert_eq!(csv(&no_state), "1234567,2500,3,action,read_socket,,42,\n");
}

#[test]
fn csv_rows_read_back_through_the_schema() {
    let mut text = format!("{CSV_HEADER}\n").into_bytes();
    write_csv(&mut text, &action());
    write_csv(&mut text, &frame());
    let rows: Vec<CsvRow> = csv::Reader::from_reader(text.as_slice())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows[0].kind, Kind::Action);
    assert_eq!(
        (rows[0].name.as_str(), rows[0].stream, rows[0].bytes),
        ("read_socket", None, 42)
    );
    assert_eq!(rows[0].state, "r---t------");
    assert_eq!((rows[1].kind, rows[1].stream), (Kind::FrameOut, Some(5)));
    assert!(rows[1].is_response());
    assert!(!rows[0].is_response());
}

#[test]
fn json_events_are_complete_slices_and_named_instants_in_micros() {
    let mut v = Vec::new();
    write_json(&mut v, &action(), Some("h2lab-poll"), PID, 3);
    write_json(&mut v, &frame(), None, PID, 3);
    let text = String::from_utf8(v).unwrap();
    assert!(
        text.contains("\"ph\":\"X\",\"pid\":1000000000,\"tid\":3,\"ts\":1234.567,\"dur\":2.500"),
        "{text}"
    );
    assert!(text.contains("\"state\":\"r---t------\""), "{text}");
    assert!(text.contains("\"thread\":\"h2lab-poll\""), "{text}");
    assert!(
        text.contains("\"name\":\"DATA out\",\"cat\":\"frame-out\",\"ph\":\"i\""),
        "{text}"
    );
    assert!(text.contains("\"ts\":2000.001"), "{text}");
}

#[test]
fn spool_records_round_trip() {
    for r in [
        action(),
        frame(),
        Record {
            state: NO_STATE,
            ..action()
        },
    ] {
        assert_eq!(Packed::from_bytes(&Packed::pack(&r).to_bytes()).unpack(), r);
    }
    let conn = Record {
        kind: Kind::Conn,
        name: Some(Name::Accept),
        ..action()
    };
    assert_eq!(
        Packed::from_bytes(&Packed::pack(&conn).to_bytes()).unpack(),
        conn
    );
}
