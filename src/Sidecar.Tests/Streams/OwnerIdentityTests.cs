using System.Text;
using Microsoft.AspNetCore.Http;
using Sidecar.Streams;

namespace Sidecar.Tests.Streams;

public class OwnerIdentityTests
{
    [Fact]
    public void Hash_RotatedClerkTokensOfOneUser_AreTheSameOwner()
    {
        var first = Request(cookie: Jwt("""{"iss":"https://clerk.example","sub":"user_1","iat":1}"""));
        var rotated = Request(cookie: Jwt("""{"iss":"https://clerk.example","sub":"user_1","iat":61}"""));
        var other = Request(cookie: Jwt("""{"iss":"https://clerk.example","sub":"user_2","iat":1}"""));

        Assert.Equal(OwnerIdentity.Hash(first, "s1"), OwnerIdentity.Hash(rotated, "s1"));
        Assert.NotEqual(OwnerIdentity.Hash(first, "s1"), OwnerIdentity.Hash(other, "s1"));
    }

    [Fact]
    public void Hash_BearerCookieAndAnonymous_AreDifferentOwners()
    {
        var hashes = new[]
        {
            OwnerIdentity.Hash(Request(bearer: "token-a"), "s1"),
            OwnerIdentity.Hash(Request(bearer: "token-b"), "s1"),
            OwnerIdentity.Hash(Request(cookie: "opaque"), "s1"),
            OwnerIdentity.Hash(Request(), "s1"),
            OwnerIdentity.Hash(Request(), "s2"),
        };

        Assert.Equal(hashes.Length, hashes.Distinct().Count());
        Assert.All(hashes, h => Assert.DoesNotContain("token", h, StringComparison.Ordinal));
    }

    [Fact]
    public void Hash_WithAKey_IsKeyedAndStable()
    {
        var request = Request(bearer: "token-a");

        var keyed = OwnerIdentity.Hash(request, "s1", "secret-1");

        Assert.Equal(keyed, OwnerIdentity.Hash(request, "s1", "secret-1"));
        Assert.NotEqual(keyed, OwnerIdentity.Hash(request, "s1", "secret-2"));
        Assert.NotEqual(keyed, OwnerIdentity.Hash(request, "s1"));
    }

    [Theory]
    [InlineData("not.a.jwt")]
    [InlineData("a.%%%.c")]
    [InlineData("a.bm90IGpzb24.c")]
    [InlineData("a.eyJpc3MiOiJ4In0.c")]
    public void Hash_MalformedTokens_CountAsOpaqueCredentials(string token)
    {
        var hash = OwnerIdentity.Hash(Request(bearer: token), "s1");

        Assert.Equal(64, hash.Length);
        Assert.NotEqual(hash, OwnerIdentity.Hash(Request(bearer: token + "x"), "s1"));
    }

    private static HttpRequest Request(string? bearer = null, string? cookie = null)
    {
        var context = new DefaultHttpContext();
        if (bearer is not null)
        {
            context.Request.Headers.Authorization = "Bearer " + bearer;
        }

        if (cookie is not null)
        {
            context.Request.Headers.Cookie = "__session=" + cookie;
        }

        return context.Request;
    }

    private static string Jwt(string payload) =>
        "eyJhbGciOiJub25lIn0." + Convert.ToBase64String(Encoding.UTF8.GetBytes(payload)).TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".sig";
}
