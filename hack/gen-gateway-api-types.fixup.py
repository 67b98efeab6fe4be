"""Fix-up of kopium's output for hack/gen-gateway-api-types (stdin → stdout).

kopium renders a CRD enum of integers (HTTPRoute's RequestRedirect statusCode: 301, 302, ...) as a Rust enum
with string renames, which cannot deserialize the JSON numbers the API server sends: every such enum becomes
`i64`, and its definition is dropped. The header names the generator instead of the temporary file path.
"""

import re
import sys

kind, version = sys.argv[1], sys.argv[2]
src = sys.stdin.read()

# Header: kopium records the command line, which contains the module cache path; keep it stable.
src = re.sub(
    r"// kopium command: .*\n",
    f"// kopium command: kopium -f gateway.networking.k8s.io_{kind}.yaml --api-version v1 "
    "--derive Default --derive PartialEq --smart-derive-elision\n"
    f"// source: sigs.k8s.io/gateway-api@{version} config/crd/standard (hack/gen-gateway-api-types)\n",
    src,
)

enum_re = re.compile(
    r"#\[derive\([^)]*\)\]\npub enum (\w+) \{\n((?:    .*\n)*?)\}\n\n?", re.MULTILINE
)
numeric = []
for m in enum_re.finditer(src):
    renames = re.findall(r'#\[serde\(rename = "([^"]*)"\)\]', m.group(2))
    if renames and all(r.isdigit() for r in renames):
        numeric.append(m.group(1))

for name in numeric:
    src = re.sub(
        r"#\[derive\([^)]*\)\]\npub enum " + name + r" \{\n(?:    .*\n)*?\}\n\n?", "", src
    )
    src = re.sub(r"\b" + name + r"\b", "i64", src)

# Module-level allowances: generated names follow the CRD, not Rust style.
src = "#![allow(clippy::all, non_camel_case_types, missing_docs)]\n" + src
sys.stdout.write(src)
