from flowship import console


def test_untrusted_text_starts_no_command(capsys):
    console.configure(actions=True)
    try:
        console.info("flow\r::error::forged\n  ::stop-commands::x\nname ##[add-mask]pw")
        console.error("title\r##[stop-commands]x", title="a##[b")
    finally:
        console.configure(actions=False)
    err = capsys.readouterr().err
    for line in err.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        assert "##[" not in line
        if line.lstrip().startswith("::"):
            assert line.startswith("::error ") or line.startswith("::error::")
