"""Library errors said in one line: requests/urllib3 failures, runc's Go JSON errors."""

import requests
from support import free_port

from content.registry.failures import describe
from runtime.runc import runtime_message


def test_a_refused_connection_is_one_phrase() -> None:
    try:
        requests.get(f"http://127.0.0.1:{free_port()}/v2/", timeout=5)
    except requests.RequestException as e:
        assert describe(e) == "connection refused"
    else:
        raise AssertionError("nothing listens there")


def test_an_unresolvable_host_is_named() -> None:
    error = requests.ConnectionError(
        "HTTPConnectionPool(host='nowhere.invalid', port=80): Max retries exceeded with url: "
        "/v2/ (Caused by NameResolutionError(\"HTTPConnection(host='nowhere.invalid', "
        "port=80): Failed to resolve 'nowhere.invalid' ([Errno -2] Name or service not "
        "known)\"))")
    assert describe(error) == "cannot resolve host nowhere.invalid"
    assert describe(requests.ReadTimeout("HTTPConnectionPool(...): Read timed out.")) \
        == "timed out"


def test_go_json_errors_from_runc_speak_of_the_spec() -> None:
    line = ('time="2026-12-01T09:00:00Z" level=error msg="json: cannot unmarshal string into '
            'Go struct field Process.process.args of type []string"')
    assert runtime_message(line) == \
        "the spec's process.args: a string where a list of strings is wanted"
    assert runtime_message("json: cannot unmarshal number -1 into Go struct field "
                           "User.process.user.uid of type uint32") == \
        "the spec's process.user.uid: a number where an integer >= 0 is wanted"
    assert runtime_message("exec: \"x\": executable file not found") == \
        'exec: "x": executable file not found'
