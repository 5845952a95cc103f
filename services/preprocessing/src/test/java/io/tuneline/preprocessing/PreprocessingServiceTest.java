package io.tuneline.preprocessing;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import io.tuneline.testing.ServiceContractTest;

@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class PreprocessingServiceTest extends ServiceContractTest {}
