import urllib.request


def test_prefect_server_answers(prefect_api):
    with urllib.request.urlopen(f"{prefect_api}/health") as resp:
        assert resp.status == 200


def test_moto_answers_ecs(aws):
    import boto3

    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="smoke")
    assert [c["clusterName"] for c in ecs.describe_clusters(clusters=["smoke"])["clusters"]] == ["smoke"]
