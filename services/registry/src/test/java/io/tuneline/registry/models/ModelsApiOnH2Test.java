package io.tuneline.registry.models;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;

/** The model API on the one-machine database, embedded H2. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class ModelsApiOnH2Test extends ModelsApiContract {}
