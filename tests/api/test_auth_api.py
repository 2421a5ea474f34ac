from tests.api.conftest import Api


async def test_me(api: Api) -> None:
    assert isinstance(api, Api)
