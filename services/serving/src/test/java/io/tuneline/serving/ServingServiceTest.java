package io.tuneline.serving;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.testing.S3ProxyResource;
import io.tuneline.testing.ServiceContractTest;

@QuarkusTest
@QuarkusTestResource(S3ProxyResource.class)
@QuarkusTestResource(FakeRegistry.class)
class ServingServiceTest extends ServiceContractTest {}
