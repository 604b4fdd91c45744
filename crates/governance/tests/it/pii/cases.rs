//! Hand-written detection cases: one per format or trap, each with the exact span.

use governance::pii::EntityKind::{self, *};

use super::check;

const NONE: &[(EntityKind, &str)] = &[];

#[test]
fn emails() {
    check(
        "mail john.doe+tag@example.co.uk.",
        &[(Email, "john.doe+tag@example.co.uk")],
    );
    check(
        "请联系zhang.san@163.com谢谢",
        &[(Email, "zhang.san@163.com")],
    );
    check("QQ邮箱13812345678@qq.com", &[(Email, "13812345678@qq.com")]);
    check(
        "josé.garcía@ejemplo.es escribió",
        &[(Email, "josé.garcía@ejemplo.es")],
    );
    check("<a@b.io>", &[(Email, "a@b.io")]);
    check("icon@2x.png", NONE);
    check("lodash@4.17.21", NONE);
    check("user@localhost", NONE);
    check("a..b@example.com", NONE);
}

#[test]
fn phones() {
    check("+4930901820", &[(Phone, "+4930901820")]);
    check(
        "call +1 (212) 555-0123 now",
        &[(Phone, "+1 (212) 555-0123")],
    );
    check("+44 (0)20 7946 0958", &[(Phone, "+44 (0)20 7946 0958")]);
    check("电话13812345678。", &[(Phone, "13812345678")]);
    check(
        "手机：１３８１２３４５６７８",
        &[(Phone, "１３８１２３４５６７８")],
    );
    check("+86 138 1234 5678", &[(Phone, "+86 138 1234 5678")]);
    check("(212) 555-0123", &[(Phone, "(212) 555-0123")]);
    check("212-555-0123", &[(Phone, "212-555-0123")]);
    check("06 12 34 56 78", &[(Phone, "06 12 34 56 78")]);
    check("090-1234-5678", &[(Phone, "090-1234-5678")]);
    // Not phones: invalid country code, N11 area code, mobile prefix 12, bare digits.
    check("+259 1234 5678", NONE);
    check("(911) 555-0123", NONE);
    check("12812345678", NONE);
    check("order 2125550123", NONE);
    check("v13812345678", NONE);
}

#[test]
fn cards() {
    check("4111 1111 1111 1111", &[(Card, "4111 1111 1111 1111")]);
    check(
        "卡号4111-1111-1111-1111已绑定",
        &[(Card, "4111-1111-1111-1111")],
    );
    check("amex 3782 822463 10005", &[(Card, "3782 822463 10005")]);
    check("6212345678901232", &[(Card, "6212345678901232")]);
    check("4111 1111 1111 1111 2027", &[(Card, "4111 1111 1111 1111")]);
    check(
        "qty 2 4111 1111 1111 1111 5555 5555 5555 4444",
        &[(Card, "4111 1111 1111 1111"), (Card, "5555 5555 5555 4444")],
    );
    check("4111 1111 1111 1112", NONE);
    check("1234 5678 9012 3452", NONE);
    check("4111-1111 1111-1111", NONE);
}

#[test]
fn ibans() {
    check(
        "IBAN DE89 3704 0044 0532 0130 00.",
        &[(Iban, "DE89 3704 0044 0532 0130 00")],
    );
    check(
        "GB82WEST12345698765432",
        &[(Iban, "GB82WEST12345698765432")],
    );
    check(
        "DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX",
        &[(Iban, "DE89 3704 0044 0532 0130 00")],
    );
    check("DE88 3704 0044 0532 0130 00", NONE);
    check("XDE89370400440532013000", NONE);
}

#[test]
fn cn_ids() {
    check(
        "身份证11010519491231002X。",
        &[(CnId, "11010519491231002X")],
    );
    check("身份证110105194912310021", NONE);
    check("身份证11010519490231002X", NONE);
}

#[test]
fn ssns() {
    check("SSN 078-05-1120", &[(Ssn, "078-05-1120")]);
    check("SSN 078 05 1120", &[(Ssn, "078 05 1120")]);
    check(
        "000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000",
        NONE,
    );
}

#[test]
fn ips() {
    check("from 192.168.1.1:8080", &[(Ip, "192.168.1.1")]);
    check("net 10.0.0.0/8.", &[(Ip, "10.0.0.0")]);
    check("v1.2.3.4 and 1.2.3.4.5 and 10.0.0.256", NONE);
    check("Version 2.3.10.1, 版本号 2.3.10.1, build: 1.0.0.7", NONE);
    check("010.0.0.1", NONE);
    check("ratio 1:2:3:4:5:6:7:8", NONE);
    check("[2001:db8::1]:443", &[(Ip, "2001:db8::1")]);
    check("::ffff:192.0.2.1", &[(Ip, "::ffff:192.0.2.1")]);
    check("std::io::Result and 12:30:45 and 00:1A:2B:3C:4D:5E", NONE);
}

#[test]
fn secrets() {
    check("AKIAIOSFODNN7EXAMPLE", &[(Secret, "AKIAIOSFODNN7EXAMPLE")]);
    check(
        "key=AIzaSyA1234567890abcdefghijklmnopqrstuv",
        &[(Secret, "AIzaSyA1234567890abcdefghijklmnopqrstuv")],
    );
    check(
        "sk-AbCdEfGh1234567890IjKlMnOp",
        &[(Secret, "sk-AbCdEfGh1234567890IjKlMnOp")],
    );
    check("sk-learn-is-a-long-library-name", NONE);
    check(
        "chr_k3y1d_S3cr3tS3cr3tS3cr3t42",
        &[(Secret, "chr_k3y1d_S3cr3tS3cr3tS3cr3t42")],
    );
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    check(&format!("Bearer {jwt}"), &[(Secret, jwt)]);
    // Three base64url parts whose header is not JSON with "alg".
    check("eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2ln", NONE);
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
    check(&format!("key:\n{pem}\n"), &[(Secret, pem)]);
    check(
        "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nqrs",
        &[(Secret, "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nqrs")],
    );
    check(
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        NONE,
    );
}

#[test]
fn several_in_one_text() {
    check(
        "张三 zhang@example.cn 13812345678 从 10.1.2.3 登录",
        &[
            (Email, "zhang@example.cn"),
            (Phone, "13812345678"),
            (Ip, "10.1.2.3"),
        ],
    );
}
